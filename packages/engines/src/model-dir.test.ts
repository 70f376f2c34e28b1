import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { cp, readdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { test } from 'node:test';
import type { Tensor2D } from '@imgpipe/engines/tfjs-parts';
import { buildTinyConvBackbone, makeTempDir } from '@imgpipe/test-utils';
import { loadBackbone, Head, loadModel, saveModelDir, loadTf } from '@imgpipe/engines';
import { InputError, listModelFiles, readModelCard, removeTrackedSync, sha256, type ModelCard, createRng } from '@imgpipe/kit';

const { tf } = await loadTf('wasm');

for (const format of ['onnx', 'tfjs-layers'] as const) {
  test(`saveModelDir + loadModel (${format} backbone): predict = backbone features through the head`, async () => {
    await using dir = await makeTempDir();
    const size = 16;
    const tiny = await buildTinyConvBackbone({ dir: join(dir.path, 'tiny'), inputSize: size, format, seed: 3 });
    const backbone = await loadBackbone(tiny.path, {
      device: 'wasm',
      featureLayer: tiny.featureLayer,
      preprocess: 'torch',
      inputSize: size,
      workers: 1,
    });
    const labels = ['cat', 'dog', 'bird'];
    const head = new Head(tf, { inputDim: backbone.info.feature_dim, classes: 3, layer_size: 6, dropout: 0.5, lr: 0.01, batch_size: 4, seed: 1 });
    const card: ModelCard = {
      format: 'imgpipe-model/1',
      labels,
      input: { size, channels: 3, fit: 'fill' },
      preprocess: backbone.info.preprocess,
      backbone: { ...backbone.info, path: '' },
      head: { path: 'head/model.json', layer_size: 6, dropout: 0.5, lr: 0.01, epochs: 1, batch_size: 4 },
      metrics: { val_accuracy: 0.5 },
      dataset: { manifest_sha256: 'abc' },
      created: new Date().toISOString(),
      versions: {},
    };
    const layers = head.toLayersModel();
    const modelDir = join(dir.path, 'model');
    await saveModelDir(modelDir, { card, backboneFiles: backbone.files, head: layers });
    layers.dispose();
    assert.deepEqual(
      (await readdir(dir.path)).filter((f) => f.startsWith('.')),
      [],
      'no temp dir left behind',
    );
    const saved = await readModelCard(modelDir);
    assert.equal(saved.backbone.path, format === 'onnx' ? 'backbone/model.onnx' : 'backbone/model.json');
    assert.deepEqual(saved.labels, labels);

    const rng = createRng(9);
    const count = 5;
    const pixels = Uint8Array.from({ length: count * size * size * 3 }, () => Math.floor(rng() * 256));
    const features = await backbone.extract(pixels, count);
    const expected = tf.tidy(() => head.predict(tf.tensor2d(features, [count, backbone.info.feature_dim]) as Tensor2D).dataSync());
    head.dispose();
    await backbone.dispose();

    // The two-part path (model.onnx is tested in whole-model.test.ts). Two wasm workers for a TF.js backbone:
    // concurrency says so, and concurrent predictions match too.
    const model = await loadModel(modelDir, { device: 'wasm', workers: 2, wholeModel: false });
    assert.equal(model.concurrency, format === 'onnx' ? 1 : 2);
    const before = tf.memory().numTensors;
    const probs = await model.predict(pixels, count);
    assert.equal(tf.memory().numTensors, before, 'predict leaks no tensors');
    assert.equal(probs.length, count * 3);
    for (let i = 0; i < probs.length; i++) assert.ok(Math.abs(probs[i]! - expected[i]!) < 1e-5, `prob ${i}: ${probs[i]} vs ${expected[i]}`);
    for (let n = 0; n < count; n++) assert.ok(Math.abs(probs[3 * n]! + probs[3 * n + 1]! + probs[3 * n + 2]! - 1) < 1e-5);
    const split = 2 * size * size * 3;
    const [a, b] = await Promise.all([model.predict(pixels.subarray(0, split), 2), model.predict(pixels.subarray(split), count - 2)]);
    assert.deepEqual([...a, ...b], [...probs], 'concurrent predictions give the same probabilities');
    await assert.rejects(model.predict(pixels.subarray(1), count), InputError);
    await model.dispose();
  });
}

test('readModelCard names the file and what is wrong', async () => {
  await using dir = await makeTempDir();
  await assert.rejects(readModelCard(dir.path), (error: Error) => error instanceof InputError && error.message.includes('card.json not found'));
  await writeFile(join(dir.path, 'card.json'), JSON.stringify({ format: 'other', labels: ['a'] }));
  await assert.rejects(
    readModelCard(dir.path),
    (error: Error) => error instanceof InputError && /format is "other".*labels must list/.test(error.message),
  );
});

// ---- a model directory is verified as a whole when loaded (issue 13) ---------------------------------------

/** A saved ONNX model directory to copy and damage, one copy per case. */
async function savedOnnxModel(root: string): Promise<{ modelDir: string; tinyPath: string }> {
  const size = 16;
  const tiny = await buildTinyConvBackbone({ dir: join(root, 'tiny'), inputSize: size, format: 'onnx', seed: 4 });
  const backbone = await loadBackbone(tiny.path, { device: 'wasm', featureLayer: tiny.featureLayer, preprocess: 'torch', inputSize: size });
  const head = new Head(tf, { inputDim: backbone.info.feature_dim, classes: 2, layer_size: 4, dropout: 0, lr: 0.01, batch_size: 4, seed: 1 });
  const layers = head.toLayersModel();
  const modelDir = join(root, 'model');
  await saveModelDir(modelDir, {
    card: {
      format: 'imgpipe-model/1',
      labels: ['cat', 'dog'],
      input: { size, channels: 3, fit: 'fill' },
      preprocess: backbone.info.preprocess,
      backbone: { ...backbone.info, path: '' },
      head: { path: 'head/model.json', layer_size: 0, dropout: 0, lr: 0.01, epochs: 1, batch_size: 4 },
      metrics: {},
      dataset: { manifest_sha256: 'abc' },
      created: new Date().toISOString(),
      versions: {},
    },
    backboneFiles: backbone.files,
    head: layers,
  });
  layers.dispose();
  head.dispose();
  await backbone.dispose();
  return { modelDir, tinyPath: tiny.path };
}

test('saveModelDir lists every file in card.json and saves the ONNX backbone with its feature output exposed', async () => {
  await using dir = await makeTempDir();
  const { modelDir, tinyPath } = await savedOnnxModel(dir.path);
  const card = await readModelCard(modelDir);
  assert.deepEqual(
    card.files?.map((f) => f.path),
    ['backbone/model.onnx', 'head/model.json', 'head/weights.bin', 'model.onnx'],
  );
  for (const file of card.files!) {
    const bytes = await readFile(join(modelDir, file.path));
    assert.equal(file.size, bytes.length, file.path);
    assert.equal(file.sha256, sha256(bytes), file.path);
  }
  type Session = { outputNames: readonly string[]; release(): Promise<void> };
  const ort = createRequire(import.meta.resolve('@imgpipe/engines').replace('file://', ''))('onnxruntime-node') as {
    InferenceSession: { create(path: string): Promise<Session> };
  };
  const session = await ort.InferenceSession.create(join(modelDir, 'backbone', 'model.onnx'));
  assert.ok(session.outputNames.includes(card.backbone.feature_layer), `outputs ${session.outputNames.join(', ')}`);
  const original = await ort.InferenceSession.create(tinyPath);
  assert.ok(!original.outputNames.includes(card.backbone.feature_layer), 'the source model did not expose it');
  await session.release();
  await original.release();
});

test('loadModel refuses a model directory with a changed, missing, extra or linked file, a path leaving it, or a wrong input size', async () => {
  await using dir = await makeTempDir();
  const { modelDir } = await savedOnnxModel(dir.path);
  const editCard = async (target: string, edit: (card: ModelCard) => void) => {
    const card = JSON.parse(await readFile(join(target, 'card.json'), 'utf8')) as ModelCard;
    edit(card);
    await writeFile(join(target, 'card.json'), JSON.stringify(card));
  };
  const cases: [string, (target: string) => Promise<void>, RegExp][] = [
    [
      'same size, changed bytes',
      async (t) => {
        const path = join(t, 'head', 'weights.bin');
        const bytes = await readFile(path);
        bytes[3] = bytes[3]! ^ 0xff;
        await writeFile(path, bytes);
      },
      /head\/weights\.bin: sha256 .* differs/,
    ],
    [
      'truncated',
      async (t) => {
        const path = join(t, 'backbone', 'model.onnx');
        await writeFile(path, (await readFile(path)).subarray(0, 100));
      },
      /backbone\/model\.onnx: 100 bytes, .* lists/,
    ],
    ['missing', (t) => rm(join(t, 'head', 'weights.bin')), /head\/weights\.bin: missing/],
    ['extra', (t) => writeFile(join(t, 'backbone', 'extra.onnx'), 'x'), /backbone\/extra\.onnx: not listed/],
    [
      'a symlink leaving it',
      async (t) => {
        const outside = join(dir.path, 'outside.onnx');
        await cp(join(t, 'backbone', 'model.onnx'), outside);
        await rm(join(t, 'backbone', 'model.onnx'));
        await symlink(outside, join(t, 'backbone', 'model.onnx'));
      },
      /backbone\/model\.onnx: a symbolic link/,
    ],
    [
      'backbone.path outside',
      async (t) => {
        await cp(join(t, 'backbone', 'model.onnx'), join(dir.path, 'elsewhere.onnx'));
        await editCard(t, (card) => (card.backbone.path = '../elsewhere.onnx'));
      },
      /backbone\.path "\.\.\/elsewhere\.onnx" points outside/,
    ],
    [
      'backbone.path absolute',
      async (t) => editCard(t, (card) => (card.backbone.path = join(t, 'backbone', 'model.onnx'))),
      /backbone\.path .* points outside/,
    ],
    [
      'a weights path leaving it',
      async (t) => {
        const json = JSON.parse(await readFile(join(t, 'head', 'model.json'), 'utf8')) as { weightsManifest: { paths: string[] }[] };
        await cp(join(t, 'head', 'weights.bin'), join(dir.path, 'weights.bin'));
        json.weightsManifest[0]!.paths = ['../../weights.bin'];
        await writeFile(join(t, 'head', 'model.json'), JSON.stringify(json));
        const files = await listModelFiles(t);
        await editCard(t, (card) => (card.files = files));
      },
      /head\/model\.json: weights path "\.\.\/\.\.\/weights\.bin" points outside/,
    ],
    ['input size edited', (t) => editCard(t, (card) => (card.input.size = 32)), /input\.size is 32 but the backbone was recorded with input_size 16/],
    ['no files list', (t) => editCard(t, (card) => delete card.files), /card\.json: lists no files/],
  ];
  for (const [name, damage, expected] of cases) {
    const target = join(dir.path, name.replace(/\W+/g, '-'));
    await cp(modelDir, target, { recursive: true });
    await damage(target);
    await assert.rejects(
      loadModel(target, { device: 'wasm' }),
      (error: Error) => {
        assert.ok(error instanceof InputError, `${name}: ${error.stack}`);
        assert.match(error.message, expected, name);
        return true;
      },
      name,
    );
  }
  const model = await loadModel(modelDir, { device: 'wasm' });
  await model.dispose();
});

test('saveModelDir tracks its temp directory, so a signal that stops the process mid-save removes it', async () => {
  await using dir = await makeTempDir();
  const saving = savedOnnxModel(dir.path).then(
    () => undefined,
    () => undefined,
  );
  let temp: string | undefined;
  for (let i = 0; i < 5000 && !temp; i++) {
    temp = (await readdir(dir.path)).find((name) => name.startsWith('.model.') && name.endsWith('.tmp'));
    if (!temp) await new Promise((resolve) => setTimeout(resolve, 1));
  }
  assert.ok(temp, 'the save made its temp directory');
  // What kit's signal handler does before exiting.
  removeTrackedSync();
  assert.equal(existsSync(join(dir.path, temp)), false, `${temp} removed`);
  await saving;
});
