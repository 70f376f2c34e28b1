// Crash consistency of a publication (issue 13): upload-s3 publishing run B over run A is killed with SIGKILL at
// seeded random moments; readers (serve's loader, the published load_model.mjs, a download of the whole
// publication) running meanwhile and after each kill always get a complete A or a complete B, never a mix. Then a
// full run commits B and leaves nothing of A; a corrupted object is refused by every reader.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { cp, mkdir, readFile, symlink, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';
import { execa } from 'execa';
import { Head, loadBackbone, loadModel, loadTf, saveModelDir } from '@imgpipe/engines';
import { createRng, sha256, silentLogger, writeJsonAtomic, type PublicationManifest } from '@imgpipe/kit';
import { downloadPublication, listMultipartUploads, listObjects, readObjectBytes, uploadObject } from '@imgpipe/s3';
import { createModelLoader, downloadPublishedModel } from '@imgpipe/serve';
import { buildTinyConvBackbone, listFilesRecursive, makeTempDir, startFaultyProxy, startS3Server } from '@imgpipe/test-utils';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const BIN = join(ROOT, 'packages/upload-s3/bin/upload-s3.js');
const SNIPPET = join(ROOT, 'packages/upload-s3/assets/load_model.mjs');
const SNIPPET_MODULES = join(ROOT, 'packages/upload-s3/node_modules');
const SIZE = 16;
const KILLS = Number(process.env.IMGPIPE_CRASH_KILLS ?? 6);
const SEED = Number(process.env.IMGPIPE_CRASH_SEED ?? 13);

const { tf } = await loadTf('wasm');

/** A run directory: a real model (tiny ONNX backbone, a head seeded by `seed`), results, eval files, a 12 MB plot. */
async function writeRun(dir: string, backbonePath: string, seed: number): Promise<void> {
  const backbone = await loadBackbone(backbonePath, { device: 'wasm', featureLayer: 'features', preprocess: 'torch', inputSize: SIZE });
  const head = new Head(tf, { inputDim: backbone.info.feature_dim, classes: 2, layer_size: 4, dropout: 0, lr: 0.01, batch_size: 4, seed });
  const layers = head.toLayersModel();
  await saveModelDir(join(dir, 'model'), {
    card: {
      format: 'imgpipe-model/1',
      labels: ['cat', 'dog'],
      input: { size: SIZE, channels: 3, fit: 'fill' },
      preprocess: backbone.info.preprocess,
      backbone: { ...backbone.info, path: '' },
      head: { path: 'head/model.json', layer_size: 4, dropout: 0, lr: 0.01, epochs: 1, batch_size: 4 },
      metrics: { val_accuracy: seed / 100 },
      dataset: { manifest_sha256: 'test' },
      created: new Date().toISOString(),
      versions: {},
    },
    backboneFiles: backbone.files,
    head: layers,
  });
  layers.dispose();
  head.dispose();
  await backbone.dispose();
  await writeFile(join(dir, 'results.csv'), `val_accuracy\n${seed / 100}\n`);
  await writeJsonAtomic(join(dir, 'eval.json'), { run: seed });
  await writeFile(join(dir, 'report.html'), `<p>run ${seed}</p>`);
  await mkdir(join(dir, 'plots'));
  await writeFile(join(dir, 'plots', 'big.png'), randomBytes(12 * 1024 * 1024));
}

test('upload-s3 killed at random moments of publishing B over A: readers see a complete A or a complete B, never a mix', {
  timeout: 600_000,
}, async () => {
  await using temp = await makeTempDir();
  const server = await startS3Server();
  const proxy = await startFaultyProxy(server.endpoint, { latencyMs: 3 });
  try {
    await server.createBucket('pub');
    const tiny = await buildTinyConvBackbone({ dir: join(temp.path, 'tiny'), inputSize: SIZE, format: 'onnx', seed: 5 });
    const runs = { A: join(temp.path, 'A'), B: join(temp.path, 'B') };
    await writeRun(runs.A, tiny.path, 11);
    await writeRun(runs.B, tiny.path, 22);
    const files = { A: await listFilesRecursive(runs.A), B: await listFilesRecursive(runs.B) };

    // What each model computes for one fixed image: serve's loader must give one of these.
    const pixels = Uint8Array.from({ length: SIZE * SIZE * 3 }, (_, i) => (i * 31) % 256);
    const expected: Record<'A' | 'B', number[]> = { A: [], B: [] };
    for (const name of ['A', 'B'] as const) {
      const model = await loadModel(join(runs[name], 'model'), { device: 'wasm' });
      expected[name] = [...(await model.predict(pixels, 1))];
      await model.dispose();
    }
    assert.notDeepEqual(expected.A, expected.B);

    const snippetDir = join(temp.path, 'snippet');
    await mkdir(snippetDir);
    await cp(SNIPPET, join(snippetDir, 'load_model.mjs'));
    for (const name of ['onnxruntime-node', '@tensorflow/tfjs', 'sharp']) {
      await mkdir(dirname(join(snippetDir, 'node_modules', name)), { recursive: true });
      await symlink(join(SNIPPET_MODULES, name), join(snippetDir, 'node_modules', name), 'dir');
    }

    const publish = (run: 'A' | 'B') =>
      execa('node', [BIN, '--run', runs[run], '--prefix', 's3://pub/models/', '--part-size', '5'], {
        cwd: temp.path,
        env: { ...server.env, S3_ENDPOINT: proxy.endpoint, NODE_NO_WARNINGS: '1' },
        reject: false,
      });

    /** A download of the whole publication: every file equal to A's or every file equal to B's. */
    let reads = 0;
    const readWhole = async (): Promise<'A' | 'B'> => {
      const dest = join(temp.path, `read-${reads++}`);
      const { manifest } = await downloadPublication(server.client, 'pub', 'models/', dest);
      const names = manifest.objects
        .map((o) => o.name)
        .filter((n) => n !== 'load_model.mjs')
        .sort();
      const which = names.length === files.A.length && (await readFile(join(dest, 'eval.json'), 'utf8')).includes('11') ? 'A' : 'B';
      assert.deepEqual(names, files[which], 'the publication lists exactly one run');
      for (const name of names)
        assert.equal(sha256(await readFile(join(dest, name))), sha256(await readFile(join(runs[which], name))), `${name} is ${which}'s`);
      return which;
    };
    /** serve's loader: the verified model, predicting what A or B computes. */
    const readServe = async (): Promise<'A' | 'B'> => {
      const served = await createModelLoader({ device: 'wasm', aws: { ...server.aws, bucket_name: 'pub' }, log: silentLogger, maxPixels: 1e6 })(
        's3://pub/models/',
      );
      try {
        const probs = [...(await served.predict(pixels, 1))];
        const which = Math.abs(probs[0]! - expected.A[0]!) < 1e-5 ? 'A' : 'B';
        probs.forEach((p, i) => {
          assert.ok(Math.abs(p - expected[which][i]!) < 1e-5, `serve's loader: ${probs} is neither A's ${expected.A} nor B's ${expected.B}`);
        });
        return which;
      } finally {
        await served.dispose();
      }
    };
    /** The published snippet, by URL: it verifies what it downloads; its card summary names the run. */
    const readSnippet = async (): Promise<'A' | 'B'> => {
      const result = await execa('node', ['load_model.mjs', `${server.endpoint}/pub/models/`], { cwd: snippetDir, reject: false });
      assert.equal(result.exitCode, 0, result.stderr);
      const accuracy = (JSON.parse(result.stdout) as { metrics: { val_accuracy: number } }).metrics.val_accuracy;
      assert.ok(accuracy === 0.11 || accuracy === 0.22, `snippet: val_accuracy ${accuracy}`);
      return accuracy === 0.11 ? 'A' : 'B';
    };

    const a = await publish('A');
    assert.equal(a.exitCode, 0, a.stderr);
    assert.equal(await readWhole(), 'A');
    // How long publishing B over A takes uninterrupted (then A again): the window the kills are drawn from.
    const started = performance.now();
    assert.equal((await publish('B')).exitCode, 0);
    const fullMs = performance.now() - started;
    assert.equal(await readWhole(), 'B');
    assert.equal((await publish('A')).exitCode, 0);
    assert.equal(await readWhole(), 'A');

    const rng = createRng(SEED);
    const outcomes: string[] = [];
    for (let kill = 0; kill < KILLS; kill++) {
      // Every other kill lands near the end, where the commit and the removal of A happen.
      const delay = Math.round(fullMs * (kill % 2 === 0 ? rng() : 0.8 + 0.35 * rng()));
      const child = publish('B');
      // Readers keep reading while B is being published (and A's objects are being removed).
      let done = false;
      const concurrent: ('A' | 'B')[] = [];
      const reader = (async () => {
        while (!done) concurrent.push(await readWhole());
      })();
      await new Promise((resolve) => setTimeout(resolve, delay));
      child.kill('SIGKILL');
      const result = await child;
      done = true;
      await reader;
      const seen = [await readWhole(), await readServe(), await readSnippet()];
      assert.ok(
        seen.every((s) => s === seen[0]),
        `after the kill every reader sees the same run: ${seen}`,
      );
      outcomes.push(`${delay}ms:${result.signal ?? `exit ${result.exitCode}`}->${seen[0]} (${concurrent.join('')})`);
      if (seen[0] === 'B') {
        const back = await publish('A');
        assert.equal(back.exitCode, 0, back.stderr);
      }
    }
    console.log(`full publish ${Math.round(fullMs)} ms; kills: ${outcomes.join(', ')}`);

    // A run to completion commits B: nothing of A left, no multipart upload left.
    const b = await publish('B');
    assert.equal(b.exitCode, 0, b.stderr);
    assert.equal(await readWhole(), 'B');
    const manifest = JSON.parse((await readObjectBytes(server.client, 'pub', 'models/publication.json')).toString()) as PublicationManifest;
    const keys: string[] = [];
    for await (const object of listObjects(server.client, 'pub', { prefix: 'models/' })) keys.push(object.key);
    assert.deepEqual(keys.sort(), ['models/publication.json', ...manifest.objects.map((o) => `models/${o.key}`)].sort(), 'only B is left');
    assert.deepEqual(await listMultipartUploads(server.client, 'pub', 'models/'), []);

    // A corrupted object (same size, changed bytes) is refused by every reader.
    const weights = manifest.objects.find((o) => o.name === 'model/head/weights.bin')!;
    const bytes = await readObjectBytes(server.client, 'pub', `models/${weights.key}`);
    bytes[0] = bytes[0]! ^ 0xff;
    await uploadObject(server.client, 'pub', `models/${weights.key}`, { bytes }, { metadata: { sha256: weights.sha256 } });
    await assert.rejects(
      downloadPublishedModel(server.client, 's3://pub/models/', join(temp.path, 'corrupt')),
      /head\/weights\.bin: sha256 .* differs/,
    );
    await assert.rejects(readServe(), /weights\.bin: sha256 .* differs/);
    const snippet = await execa('node', ['load_model.mjs', `${server.endpoint}/pub/models/`], { cwd: snippetDir, reject: false });
    assert.equal(snippet.exitCode, 1);
    assert.match(snippet.stderr, /weights\.bin: size or sha256 differs from publication\.json/);
  } finally {
    await proxy.close();
    await server.close();
  }
});
