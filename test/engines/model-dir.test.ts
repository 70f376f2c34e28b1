import assert from 'node:assert/strict';
import { readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import type { Tensor2D } from '@tensorflow/tfjs';
import { buildTinyConvBackbone, makeTempDir } from '@imgpipe/test-utils';
import { loadBackbone, Head, loadModel, saveModelDir, loadTf } from '@imgpipe/engines';
import { InputError, readModelCard, type ModelCard, createRng } from '@imgpipe/kit';

const { tf } = await loadTf('wasm');

for (const format of ['onnx', 'tfjs-layers'] as const) {
  test(`saveModelDir + loadModel (${format} backbone): predict = backbone features through the head`, async () => {
    await using dir = await makeTempDir();
    const size = 16;
    const tiny = await buildTinyConvBackbone({ dir: join(dir.path, 'tiny'), inputSize: size, format, seed: 3 });
    const backbone = await loadBackbone(tiny.path, { device: 'wasm', featureLayer: tiny.featureLayer, preprocess: 'torch', inputSize: size, workers: 1 });
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
    assert.deepEqual((await readdir(dir.path)).filter((f) => f.startsWith('.')), [], 'no temp dir left behind');
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

    // Two wasm workers for a TF.js backbone: concurrency says so, and concurrent predictions match too.
    const model = await loadModel(modelDir, { device: 'wasm', workers: 2 });
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
  await assert.rejects(readModelCard(dir.path), (error: Error) => error instanceof InputError && /format is "other".*labels must list/.test(error.message));
});
