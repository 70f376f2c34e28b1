import assert from 'node:assert/strict';
import { copyFile, cp, mkdir, readdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { deflateSync } from 'node:zlib';
import { after, before, describe, it } from 'node:test';
import { execa } from 'execa';
import { downloadPrefix, headObject, listMultipartUploads, listObjects, readObjectBytes, uploadObject } from '@imgpipe/s3';
import { listModelFiles, sha256, silentLogger, writeJsonAtomic, type PublicationManifest } from '@imgpipe/kit';
import { loadBackbone } from '@imgpipe/engines';
import { composeWholeModel } from '@imgpipe/engines/onnx-whole-model';
import { makeTempDir, onnxModel, startS3Server, capture, type S3Server, type TempDir } from '@imgpipe/test-utils';
import { runUploadS3, type UploadS3Options } from './upload.js';
import { publishModelDir } from '@imgpipe/test-utils';

const SIZE = 8;
const LABELS = ['cat', 'dog'];
const HEAD_KERNEL = [0.9, -0.4, -0.7, 0.5, 0.3, 0.8]; // [3 features, 2 classes], row-major
const HEAD_BIAS = [0.05, -0.1];
// The snippet's runtime dependencies are this package's devDependencies (a user installs them beside the snippet).
const SNIPPET_MODULES = fileURLToPath(new URL('../node_modules/', import.meta.url));

interface Preprocess {
  name: string;
  scale: number;
  mean: number[];
  std: number[];
  channel_order: 'RGB' | 'BGR';
}
const TORCH_BGR: Preprocess = { name: 'torch', scale: 1 / 255, mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225], channel_order: 'BGR' };
const TF_RGB: Preprocess = { name: 'tf', scale: 1 / 127.5, mean: [1, 1, 1], std: [1, 1, 1], channel_order: 'RGB' };

// ---- an image, a model directory and the expected prediction, all without the engines under test -------------

function crc32(bytes: Buffer): number {
  let crc = ~0;
  for (const byte of bytes) {
    crc ^= byte;
    for (let k = 0; k < 8; k++) crc = crc & 1 ? (crc >>> 1) ^ 0xedb88320 : crc >>> 1;
  }
  return ~crc >>> 0;
}

/** A plain RGB PNG of the given pixels (size x size x 3). */
function png(pixels: Uint8Array, size: number): Buffer {
  const chunk = (type: string, data: Buffer) => {
    const body = Buffer.concat([Buffer.from(type, 'ascii'), data]);
    const out = Buffer.alloc(body.length + 8);
    out.writeUInt32BE(data.length, 0);
    body.copy(out, 4);
    out.writeUInt32BE(crc32(body), body.length + 4);
    return out;
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(size, 0);
  ihdr.writeUInt32BE(size, 4);
  ihdr.set([8, 2, 0, 0, 0], 8); // 8-bit, RGB, no interlace
  const rows = Buffer.alloc(size * (size * 3 + 1));
  for (let y = 0; y < size; y++) Buffer.from(pixels.subarray(y * size * 3, (y + 1) * size * 3)).copy(rows, y * (size * 3 + 1) + 1);
  return Buffer.concat([
    Buffer.from([137, 80, 78, 71, 13, 10, 26, 10]),
    chunk('IHDR', ihdr),
    chunk('IDAT', deflateSync(rows)),
    chunk('IEND', Buffer.alloc(0)),
  ]);
}

/** features = per-channel mean of the preprocessed image (a global average pool); then softmax(features . W + b). */
function expectedProbabilities(pixels: Uint8Array, spec: Preprocess): number[] {
  const src = spec.channel_order === 'BGR' ? [2, 1, 0] : [0, 1, 2];
  const features = [0, 1, 2].map((c) => {
    let sum = 0;
    for (let p = 0; p < SIZE * SIZE; p++) sum += (pixels[p * 3 + src[c]!]! * spec.scale - spec.mean[c]!) / spec.std[c]!;
    return sum / (SIZE * SIZE);
  });
  const logits = [0, 1].map((k) => HEAD_BIAS[k]! + features.reduce((acc, f, i) => acc + f * HEAD_KERNEL[i * 2 + k]!, 0));
  const max = Math.max(...logits);
  const exps = logits.map((l) => Math.exp(l - max));
  const total = exps.reduce((a, b) => a + b, 0);
  return exps.map((e) => e / total);
}

function float32Bytes(values: number[]): Buffer {
  return Buffer.from(new Float32Array(values).buffer);
}

/** A TF.js layers model.json written by hand (no TF.js involved in making it). */
async function writeLayersModel(dir: string, layers: object[], weights: { name: string; shape: number[]; values: number[] }[]): Promise<void> {
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, 'weights.bin'), Buffer.concat(weights.map((w) => float32Bytes(w.values))));
  await writeJsonAtomic(join(dir, 'model.json'), {
    format: 'layers-model',
    generatedBy: 'imgpipe upload-s3 test',
    convertedBy: null,
    modelTopology: { class_name: 'Sequential', config: { name: 'm', layers }, keras_version: 'tfjs-layers 4.22.0', backend: 'tensor_flow.js' },
    weightsManifest: [{ paths: ['weights.bin'], weights: weights.map(({ name, shape }) => ({ name, shape, dtype: 'float32' })) }],
  });
}

async function writeModelDir(dir: string, format: 'onnx' | 'tfjs-layers' | 'converted'): Promise<Preprocess> {
  const preprocess = format === 'onnx' ? TORCH_BGR : TF_RGB;
  let backbonePath: string;
  let layout: 'NCHW' | 'NHWC';
  if (format === 'onnx') {
    // NCHW like a torch export; the features are an inner value, the graph's output is their negation, so a
    // loader that reads the graph output instead of feature_layer gets a different answer.
    layout = 'NCHW';
    backbonePath = 'backbone/model.onnx';
    await mkdir(join(dir, 'backbone'), { recursive: true });
    await writeFile(
      join(dir, backbonePath),
      onnxModel({
        input: 'input',
        inputDims: ['n', 3, SIZE, SIZE],
        outputs: ['negated', 'features'], // as imgpipe saves it: the feature layer exposed after the original output
        initializers: [],
        nodes: [
          { op: 'GlobalAveragePool', inputs: ['input'], outputs: ['pool'] },
          { op: 'Flatten', inputs: ['pool'], outputs: ['features'] },
          { op: 'Neg', inputs: ['features'], outputs: ['negated'] },
        ],
      }),
    );
  } else {
    layout = 'NHWC';
    backbonePath = 'backbone/model.json';
    await writeLayersModel(
      join(dir, 'backbone'),
      [
        {
          class_name: 'GlobalAveragePooling2D',
          config: { name: 'features', trainable: true, batch_input_shape: [null, SIZE, SIZE, 3], dtype: 'float32', data_format: 'channels_last' },
        },
      ],
      [],
    );
  }
  if (format === 'converted') {
    // What train saves for a TF.js layers backbone that ran on ONNX Runtime: the converted ONNX file (NHWC input).
    const converted = await loadBackbone(join(dir, backbonePath), {
      device: 'cpu',
      featureLayer: 'features',
      preprocess: 'tf',
      cacheDir: join(dir, 'cache'),
    });
    await converted.dispose();
    backbonePath = 'backbone/model.onnx';
    await copyFile(converted.files[0]!, join(dir, backbonePath));
    await rm(join(dir, 'cache'), { recursive: true });
    await rm(join(dir, 'backbone', 'model.json'));
    await rm(join(dir, 'backbone', 'weights.bin'));
  }
  await writeLayersModel(
    join(dir, 'head'),
    [
      {
        class_name: 'Dense',
        config: {
          name: 'dense',
          units: 2,
          activation: 'softmax',
          use_bias: true,
          trainable: true,
          batch_input_shape: [null, 3],
          dtype: 'float32',
          kernel_initializer: { class_name: 'Zeros', config: {} },
          bias_initializer: { class_name: 'Zeros', config: {} },
          kernel_regularizer: null,
          bias_regularizer: null,
          activity_regularizer: null,
          kernel_constraint: null,
          bias_constraint: null,
        },
      },
    ],
    [
      { name: 'dense/kernel', shape: [3, 2], values: HEAD_KERNEL },
      { name: 'dense/bias', shape: [2], values: HEAD_BIAS },
    ],
  );
  const preprocessSpec = { ...preprocess };
  await writeJsonAtomic(join(dir, 'card.json'), {
    format: 'imgpipe-model/1',
    labels: LABELS,
    input: { size: SIZE, channels: 3, fit: 'fill' },
    preprocess: preprocessSpec,
    backbone: {
      name: `tiny-${format}`,
      format: format === 'converted' ? 'onnx' : format,
      source: 'test',
      sha256: '',
      input_size: SIZE,
      layout,
      preprocess: preprocessSpec,
      feature_layer: 'features',
      feature_dim: 3,
      path: backbonePath,
      ...(format === 'converted' ? { converted_from: 'tfjs-layers' } : {}),
    },
    head: { path: 'head/model.json', layer_size: 0, dropout: 0, lr: 0.01, epochs: 1, batch_size: 1 },
    metrics: { val_accuracy: 0.5 },
    dataset: { manifest_sha256: 'test' },
    created: new Date(0).toISOString(),
    versions: {},
    files: await listModelFiles(dir),
  });
  return preprocess;
}

describe('runUploadS3 against the local S3 server', () => {
  let server: S3Server;
  let temp: TempDir;
  let runDir: string;
  const options = (extra: Partial<UploadS3Options> = {}): UploadS3Options => ({
    dir: runDir,
    client: server.client,
    bucket: 'results',
    prefix: 'runs/r1/',
    stdout: capture().stream,
    cwd: temp.path,
    log: silentLogger,
    ...extra,
  });

  before(async () => {
    server = await startS3Server();
    temp = await makeTempDir();
    await server.createBucket('results');
    runDir = join(temp.path, 'run');
    await writeModelDir(join(runDir, 'model'), 'onnx');
    await writeFile(
      join(runDir, 'results.csv'),
      'layer_size,lr,train_loss,val_loss,test_loss,val_accuracy,test_accuracy\n0,0.01,0.6,0.65,0.66,0.5,0.5\n',
    );
    await writeJsonAtomic(join(runDir, 'eval.json'), { accuracy: 0.5 });
    await writeFile(join(runDir, 'report.html'), '<html><body>report</body></html>');
    await mkdir(join(runDir, 'plots'));
    await writeFile(join(runDir, 'plots', 'confusion.png'), png(new Uint8Array(SIZE * SIZE * 3).fill(128), SIZE));
    await mkdir(join(runDir, 'features'));
    await writeFile(join(runDir, 'features', 'cache.bin'), 'not published');
  });
  after(async () => {
    await server.close();
    await temp.remove();
  });

  const listKeys = async (prefix: string) => {
    const keys: string[] = [];
    for await (const object of listObjects(server.client, 'results', { prefix })) keys.push(object.key);
    return keys.sort();
  };
  const NAMES = [
    'eval.json',
    'load_model.mjs',
    'model/backbone/model.onnx',
    'model/card.json',
    'model/head/model.json',
    'model/head/weights.bin',
    'plots/confusion.png',
    'report.html',
    'results.csv',
  ];

  it('publishes under p/<id>/ and commits with publication.json written last; a second run sends nothing', async () => {
    const out = capture();
    const first = await runUploadS3(options({ stdout: out.stream }));
    const lines = out.text().trim().split('\n');
    assert.equal(lines.length, 1, 'one pointer line');
    const pointer = JSON.parse(lines[0]!) as {
      kind: string;
      id: string;
      objects: string[];
      uploaded: number;
      snippet: string;
      model: string;
      manifest: string;
    };
    assert.equal(pointer.kind, 'upload');
    const root = `runs/r1/p/${pointer.id}/`;
    assert.equal(pointer.manifest, 's3://results/runs/r1/publication.json');
    assert.equal(pointer.snippet, `s3://results/${root}load_model.mjs`);
    assert.equal(pointer.model, `s3://results/${root}model/`);
    assert.deepEqual(
      [...pointer.objects].sort(),
      NAMES.map((n) => `s3://results/${root}${n}`),
    );
    assert.equal(pointer.uploaded, NAMES.length);
    assert.deepEqual(await listKeys('runs/r1/'), ['runs/r1/publication.json', ...NAMES.map((n) => root + n)].sort());
    const manifest = JSON.parse((await readObjectBytes(server.client, 'results', 'runs/r1/publication.json')).toString()) as PublicationManifest;
    assert.equal(manifest.format, 'imgpipe-publication/1');
    assert.equal(manifest.id, pointer.id);
    assert.equal(manifest.run, 'run');
    assert.deepEqual(manifest.objects.map((o) => o.name).sort(), NAMES);
    for (const object of manifest.objects) {
      const bytes = await readObjectBytes(server.client, 'results', `runs/r1/${object.key}`);
      assert.equal(object.size, bytes.length, object.name);
      assert.equal(object.sha256, sha256(bytes), object.name);
      if (object.name !== 'load_model.mjs') assert.equal(object.sha256, sha256(await readFile(join(runDir, object.name))), object.name);
    }
    assert.equal((await headObject(server.client, 'results', `${root}model/card.json`))?.contentType, 'application/json');
    assert.match((await headObject(server.client, 'results', `${root}load_model.mjs`))?.contentType ?? '', /^text\/javascript/);
    assert.equal(
      first.items.every((i) => i.status === 'uploaded'),
      true,
    );

    const second = await runUploadS3(options());
    assert.equal(second.pointer.uploaded, 0, 'nothing sent again');
    assert.equal(second.pointer.skipped, NAMES.length);
    assert.equal(second.manifest.created, manifest.created, 'the manifest is not rewritten');

    // A changed file makes a new publication: the rest is copied on the server, and the old one is removed.
    await writeFile(join(runDir, 'results.csv'), 'layer_size,lr\n1,0.1\n');
    const third = await runUploadS3(options());
    assert.deepEqual(
      third.items.filter((i) => i.status === 'uploaded').map((i) => i.name),
      ['results.csv'],
    );
    assert.equal(third.pointer.copied, NAMES.length - 1);
    const newRoot = `runs/r1/p/${third.manifest.id}/`;
    assert.notEqual(newRoot, root);
    assert.deepEqual(
      await listKeys('runs/r1/'),
      ['runs/r1/publication.json', ...NAMES.map((n) => newRoot + n)].sort(),
      'nothing of the old publication left',
    );
    assert.equal((await readObjectBytes(server.client, 'results', `${newRoot}results.csv`)).toString(), 'layer_size,lr\n1,0.1\n');
  });

  it('removes what the earlier publication listed and the proven flat layout after the commit, nothing else, and aborts stale multipart uploads', async () => {
    const prefix = 'runs/old/';
    // An earlier publication (its manifest lists p/<id>/model/…), and the flat layout upload-s3 wrote before
    // manifests, each object with the sha256 metadata upload-s3 sets.
    const earlier = await publishModelDir(server.client, 'results', prefix, join(runDir, 'model'));
    for (const name of ['results.csv', 'model/card.json', 'plots/old.png', 'load_model.mjs']) {
      await uploadObject(server.client, 'results', prefix + name, { bytes: 'old' }, { metadata: { sha256: sha256('old') } });
    }
    // Not listed by any manifest, so not upload-s3's to remove, even under p/.
    await uploadObject(server.client, 'results', `${prefix}p/0123456789abcdef/model/card.json`, { bytes: 'unlisted' });
    await uploadObject(server.client, 'results', `${prefix}notes.txt`, { bytes: 'not ours' });
    // A multipart upload a killed publisher left (fauxqs needs no signature, so plain HTTP starts one).
    const started = await fetch(`${server.endpoint}/results/${prefix}p/0123456789abcdef/model/backbone/model.onnx?uploads`, { method: 'POST' });
    assert.equal(started.status, 200);
    assert.equal((await listMultipartUploads(server.client, 'results', prefix)).length, 1);

    const result = await runUploadS3(options({ prefix }));
    assert.deepEqual((await listMultipartUploads(server.client, 'results', prefix)).length, 0, 'the stale multipart upload is aborted');
    const root = `${prefix}p/${result.manifest.id}/`;
    assert.deepEqual(
      [...(result.manifest.superseded ?? [])].sort(),
      [...earlier.objects.map((o) => o.key), 'load_model.mjs', 'model/card.json', 'plots/old.png', 'results.csv'].sort(),
    );
    assert.deepEqual(
      await listKeys(prefix),
      [`${prefix}notes.txt`, `${prefix}p/0123456789abcdef/model/card.json`, `${prefix}publication.json`, ...NAMES.map((n) => root + n)].sort(),
    );
  });

  it('the uploaded snippet loads the model (a publication downloaded or by URL, a model dir) and predicts what the model computes', async () => {
    const { manifest } = await runUploadS3(options({ prefix: 'runs/snippet' }));
    const fetched = join(temp.path, 'fetched');
    await downloadPrefix(server.client, 'results', 'runs/snippet/', fetched);
    await cp(join(fetched, 'p', manifest.id, 'load_model.mjs'), join(fetched, 'load_model.mjs'));
    // A directory whose node_modules hold the runtime dependencies, as a user would install them.
    for (const name of ['onnxruntime-node', '@tensorflow/tfjs', 'sharp']) {
      await mkdir(dirname(join(fetched, 'node_modules', name)), { recursive: true });
      await symlink(join(SNIPPET_MODULES, name), join(fetched, 'node_modules', name), 'dir');
    }
    const pixels = new Uint8Array(SIZE * SIZE * 3);
    for (let i = 0; i < pixels.length; i++) pixels[i] = (i * 37 + (i % 3) * 60) % 256;
    await writeFile(join(fetched, 'image.png'), png(pixels, SIZE));

    const info = await execa('node', ['load_model.mjs', `p/${manifest.id}/model`], { cwd: fetched, reject: false });
    assert.equal(info.exitCode, 0, info.stderr);
    assert.deepEqual(JSON.parse(info.stdout).labels, LABELS);

    const tfjsModel = join(fetched, 'model-tfjs');
    const url = `${server.endpoint}/results/runs/snippet/`;
    const cases: [string, Preprocess][] = [
      ['.', TORCH_BGR],
      [url, TORCH_BGR],
      ['model-tfjs', await writeModelDir(tfjsModel, 'tfjs-layers')],
      ['model-converted', await writeModelDir(join(fetched, 'model-converted'), 'converted')],
    ];
    for (const [dir, spec] of cases) {
      const result = await execa('node', ['load_model.mjs', dir, 'image.png'], { cwd: fetched, reject: false });
      assert.equal(result.exitCode, 0, result.stderr);
      const printed = JSON.parse(result.stdout.trim().split('\n').at(-1)!) as { label: string; probabilities: Record<string, number> };
      const expected = expectedProbabilities(pixels, spec);
      assert.equal(printed.label, LABELS[expected[1]! > expected[0]! ? 1 : 0], dir);
      for (const [i, label] of LABELS.entries())
        assert.ok(
          Math.abs(printed.probabilities[label]! - expected[i]!) < 1e-4,
          `${dir} ${label}: ${printed.probabilities[label]} vs ${expected[i]}`,
        );
    }
  });

  it('a model with model.onnx: the snippet runs it with only onnxruntime-node and sharp installed, and predicts what the model computes', async () => {
    const dir = join(temp.path, 'whole');
    const modelDir = join(dir, 'model');
    const spec = await writeModelDir(modelDir, 'onnx'); // NCHW, BGR: the channel reorder happens in the graph too
    const head = [
      { inputs: 3, units: 2, kernel: Float32Array.from(HEAD_KERNEL), bias: Float32Array.from(HEAD_BIAS), activation: 'softmax' as const },
    ];
    const backbone = await readFile(join(modelDir, 'backbone', 'model.onnx'));
    const card = JSON.parse(await readFile(join(modelDir, 'card.json'), 'utf8'));
    await writeFile(
      join(modelDir, 'model.onnx'),
      composeWholeModel({
        backbone,
        source: 'test',
        featureValue: 'features',
        layout: 'NCHW',
        inputSize: SIZE,
        preprocess: card.preprocess,
        head,
        labels: LABELS,
      }),
    );
    await writeJsonAtomic(join(modelDir, 'card.json'), {
      ...card,
      onnx: { path: 'model.onnx', input: 'pixels', output: 'probabilities', opset: 13 },
      files: await listModelFiles(modelDir),
    });
    await copyFile(new URL('../assets/load_model.mjs', import.meta.url), join(dir, 'load_model.mjs'));
    for (const name of ['onnxruntime-node', 'sharp']) {
      await mkdir(join(dir, 'node_modules'), { recursive: true });
      await symlink(join(SNIPPET_MODULES, name), join(dir, 'node_modules', name), 'dir');
    }
    const pixels = new Uint8Array(SIZE * SIZE * 3);
    for (let i = 0; i < pixels.length; i++) pixels[i] = (i * 53 + (i % 3) * 90) % 256;
    await writeFile(join(dir, 'image.png'), png(pixels, SIZE));
    const tmp = join(dir, 'tmp');
    await mkdir(tmp);
    const { ORT_DISABLE_TELEMETRY: _set, ...env } = process.env; // as a user's own process has it: not set
    const result = await execa('node', ['load_model.mjs', 'model', 'image.png'], {
      cwd: dir,
      reject: false,
      extendEnv: false,
      env: { ...env, TMPDIR: tmp },
    });
    assert.equal(result.exitCode, 0, result.stderr);
    const printed = JSON.parse(result.stdout.trim()) as { probabilities: Record<string, number> };
    const expected = expectedProbabilities(pixels, spec);
    for (const [i, label] of LABELS.entries())
      assert.ok(Math.abs(printed.probabilities[label]! - expected[i]!) < 1e-5, `${label}: ${printed.probabilities[label]} vs ${expected[i]}`);
    assert.deepEqual(await readdir(tmp), [], 'onnxruntime-node left no mat-debug log behind');
    await writeFile(join(modelDir, 'model.onnx'), 'changed');
    const refused = await execa('node', ['load_model.mjs', 'model', 'image.png'], { cwd: dir, reject: false });
    assert.equal(refused.exitCode, 1);
    assert.match(refused.stderr, /model\.onnx: \d+ bytes, .* lists/);
  });

  it('refuses, before sending anything, a model whose file is a symbolic link or is missing though card.json lists it', async () => {
    const linked = join(temp.path, 'linked-run');
    await cp(runDir, linked, { recursive: true });
    const onnx = join(linked, 'model', 'backbone', 'model.onnx');
    await cp(onnx, join(temp.path, 'outside.onnx'));
    await rm(onnx);
    await symlink(join(temp.path, 'outside.onnx'), onnx);
    const before = await listKeys('linked/');
    await assert.rejects(runUploadS3(options({ dir: linked, prefix: 'linked/' })), (error: Error) => {
      assert.match(error.message, /linked-run\/model\/backbone\/model\.onnx: a symbolic link; upload-s3 publishes plain files only/);
      return error.name === 'InputError';
    });
    await rm(onnx);
    await assert.rejects(runUploadS3(options({ dir: linked, prefix: 'linked/' })), (error: Error) => {
      assert.match(error.message, /linked-run\/model\/backbone\/model\.onnx: listed in .*card\.json but missing; the model directory is incomplete/);
      return error.name === 'InputError';
    });
    await assert.rejects(
      runUploadS3(options({ dir: join(linked, 'model'), prefix: 'linked/' })),
      /model\/backbone\/model\.onnx: listed in .*card\.json but missing/,
    );
    assert.deepEqual(await listKeys('linked/'), before, 'nothing published');
    assert.deepEqual(before, []);
  });

  it('refuses a directory that holds no model', async () => {
    await mkdir(join(temp.path, 'empty'));
    await assert.rejects(runUploadS3(options({ dir: join(temp.path, 'empty') })), /neither a run directory .* nor a model directory/);
  });
});
