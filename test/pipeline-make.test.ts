// The Makefile's stage targets with the real bins (run `npx tsc -b` first) against the local S3 server: `make all`
// runs download -> prep -> train -> evaluate -> upload; a second `make all` does no work; a stage reruns only when
// the content of its inputs or its options change, and then only it and the stages after it.
import assert from 'node:assert/strict';
import { copyFile, mkdir, readdir, stat, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { buildTinyConvBackbone } from '@imgpipe/test-utils';
import { BIN, BUCKET, CSV_URI, REPO, runCommand, SIZE, startPipelineFixture, type PipelineFixture } from './pipeline-fixture.js';

let fixture: PipelineFixture;
let work: string;
before(async () => {
  fixture = await startPipelineFixture('pipeline-make', 48);
  work = join(fixture.temp.path, 'work');
});
after(() => fixture?.close());

const TOOLS = ['download-s3', 'prep-data', 'train', 'eval-model', 'upload-s3'] as const;
const OUTPUTS = ['images.csv', 'prep.json', 'run.json', 'eval.json', 'upload.json'];

async function make(vars: Record<string, string> = {}, env: Record<string, string> = {}) {
  const base = {
    WORK: work,
    CSV: CSV_URI,
    BUCKET,
    PREFIX: 'made/',
    IMG: String(SIZE),
    BACKBONE: fixture.backbone.path,
    FEATURE_LAYER: fixture.backbone.featureLayer,
    DEVICE: 'wasm',
    TRAIN_FLAGS: '--lr 0.01,0.05 --layer-size 8,16 --epochs 8 --batch-size 8',
    MIN_ACCURACY: '0.75',
    SKIP_BUILD: '1',
  };
  const result = await runCommand(
    'make',
    ['-C', REPO, '--no-print-directory', 'all', ...Object.entries({ ...base, ...vars }).map(([k, v]) => `${k}=${v}`)],
    { env: { ...fixture.env, ...env }, timeoutMs: 300_000 },
  );
  assert.equal(result.code, 0, `${result.stdout}\n${result.stderr}`);
  // make echoes each recipe it runs on stdout: the tools it started.
  const ran = TOOLS.filter((tool) => result.stdout.includes(`${BIN}/${tool} `) || result.stdout.includes(`node_modules/.bin/${tool} `));
  return { ...result, ran };
}

const mtimes = async () => Promise.all(OUTPUTS.map(async (file) => (await stat(join(work, file))).mtimeMs));

test('make all runs every stage once; a second make all does no work', async () => {
  const first = await make();
  assert.deepEqual(first.ran, [...TOOLS]);
  const keys = await fixture.keys('made/');
  // A publication: the manifest, and the run's files under made/p/<id>/.
  assert.ok(keys.includes('made/publication.json'), keys.join(', '));
  assert.ok(
    ['model/card.json', 'results.csv'].every((name) => keys.some((key) => new RegExp(`^made/p/[^/]+/${name}$`).test(key))),
    keys.join(', '),
  );
  const before = await mtimes();

  const second = await make();
  assert.deepEqual(second.ran, []);
  assert.equal(second.stderr.trim(), '', 'the stamps changed on an unchanged rerun');
  assert.deepEqual(await mtimes(), before);
  assert.equal((await readdir(join(work, 'runs'))).length, 1);
});

test("a stage reruns when its inputs' content or its options change, with the stages after it and no others", async () => {
  // Touching a stage's input without changing its content is not a change.
  const later = new Date(Date.now() + 5000);
  await utimes(join(work, 'images.csv'), later, later);
  assert.deepEqual((await make()).ran, []);

  // A new gate: eval reruns; it gives the same evaluation, so there is nothing new to upload; no retraining.
  const gate = await make({ MIN_ACCURACY: '0.7' });
  assert.deepEqual(gate.ran, ['eval-model']);
  assert.match(gate.stderr, /stage eval: options changed/);
  assert.equal((await readdir(join(work, 'runs'))).length, 1);

  // New train options: train, eval and upload rerun (a new run directory); download and prep do not.
  const retrain = await make({ MIN_ACCURACY: '0.7', TRAIN_FLAGS: '--lr 0.01,0.05 --layer-size 8,16 --epochs 9 --batch-size 8' });
  assert.deepEqual(retrain.ran, ['train', 'eval-model', 'upload-s3']);
  assert.equal((await readdir(join(work, 'runs'))).length, 2);
  assert.deepEqual((await make({ MIN_ACCURACY: '0.7', TRAIN_FLAGS: '--lr 0.01,0.05 --layer-size 8,16 --epochs 9 --batch-size 8' })).ran, []);
});

test("train reruns when a setting changes outside make's variables: an IMGPIPE_* variable, $IMGPIPE_CONFIG, a backbone file the config names", async () => {
  const vars = { MIN_ACCURACY: '0', TRAIN_FLAGS: '--lr 0.01,0.05 --layer-size 8,16 --batch-size 8' };
  const retrained = ['train', 'eval-model', 'upload-s3'];
  assert.deepEqual((await make(vars, { IMGPIPE_TRAIN_EPOCHS: '9' })).ran, retrained, 'new TRAIN_FLAGS');
  assert.deepEqual((await make(vars, { IMGPIPE_TRAIN_EPOCHS: '9' })).ran, []);
  const epochs = await make(vars, { IMGPIPE_TRAIN_EPOCHS: '8' });
  assert.deepEqual(epochs.ran, retrained);
  assert.match(epochs.stderr, /stage train: train\.epochs changed/);

  // The backbone named in a config file that only $IMGPIPE_CONFIG names (no BACKBONE): a new backbone, then the same
  // file replaced in place, each retrain.
  const dir = join(fixture.temp.path, 'config-backbone');
  await mkdir(dir, { recursive: true });
  const backbone = join(dir, 'model.onnx');
  await copyFile(fixture.backbone.path, backbone);
  const config = join(fixture.temp.path, 'make-config.yaml');
  await writeFile(config, `train:\n  epochs: 8\n  backbone: ${backbone}\n`);
  const viaConfig = { ...vars, BACKBONE: '' };
  const named = await make(viaConfig, { IMGPIPE_CONFIG: config });
  assert.deepEqual(named.ran, retrained);
  assert.match(named.stderr, /stage train: options, train\.backbone, backbone .*model\.onnx changed/);
  assert.deepEqual((await make(viaConfig, { IMGPIPE_CONFIG: config })).ran, []);
  const other = await buildTinyConvBackbone({
    dir: join(fixture.temp.path, 'other-backbone'),
    inputSize: SIZE,
    format: 'onnx',
    channels: [8, 16],
    seed: 4,
  });
  await copyFile(other.path, backbone);
  const replaced = await make(viaConfig, { IMGPIPE_CONFIG: config });
  assert.deepEqual(replaced.ran.slice(0, 1), ['train']);
  assert.match(replaced.stderr, new RegExp(`stage train: backbone ${backbone} changed`));
});
