import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { buildTinyConvBackbone, makeTempDir, tinyConvReference, type TempDir, type TinyBackbone } from '@imgpipe/test-utils';
import { loadBackbone, type Backbone, loadTf } from '@imgpipe/engines';
import { UsageError, createRng } from '@imgpipe/kit';

const SIZE = 16;
const COUNT = 5;

/** torch preprocessing written out independently of preprocess.ts. */
function torchInput(pixels: Uint8Array): Float32Array {
  const mean = [0.485, 0.456, 0.406];
  const std = [0.229, 0.224, 0.225];
  return Float32Array.from(pixels, (p, i) => (p / 255 - mean[i % 3]!) / std[i % 3]!);
}

function maxDiff(a: Float32Array, b: Float32Array): number {
  assert.equal(a.length, b.length);
  let max = 0;
  for (let i = 0; i < a.length; i++) max = Math.max(max, Math.abs(a[i]! - b[i]!));
  return max;
}

describe('backbones: the same conv net in ONNX and TF.js', () => {
  let temp: TempDir;
  let onnxModel: TinyBackbone;
  let tfjsModel: TinyBackbone;
  let pixels: Uint8Array;
  let reference: Float32Array;
  const open: Backbone[] = [];

  before(async () => {
    temp = await makeTempDir('imgpipe-backbone-');
    onnxModel = await buildTinyConvBackbone({ dir: join(temp.path, 'onnx'), inputSize: SIZE, seed: 3, format: 'onnx' });
    tfjsModel = await buildTinyConvBackbone({ dir: join(temp.path, 'tfjs'), inputSize: SIZE, seed: 3, format: 'tfjs-layers' });
    const rand = createRng(11);
    pixels = Uint8Array.from({ length: COUNT * SIZE * SIZE * 3 }, () => Math.floor(rand() * 256));
    reference = tinyConvReference(onnxModel.weights, torchInput(pixels), COUNT, SIZE);
    // The reference is not trivially zero: ReLU + pooling leave real signal in every image.
    assert.ok(reference.some((v) => v > 0.01));
  });
  after(async () => {
    for (const b of open) await b.dispose();
    await temp.remove();
  });

  it('ONNX: features from a value that is not a graph output match the reference within 1e-4', async () => {
    const backbone = await loadBackbone(onnxModel.path, { device: 'cpu', featureLayer: 'features', preprocess: 'torch' });
    open.push(backbone);
    assert.equal(backbone.info.format, 'onnx');
    assert.equal(backbone.info.layout, 'NCHW');
    assert.equal(backbone.info.input_size, SIZE);
    assert.equal(backbone.info.feature_layer, 'features');
    assert.equal(backbone.info.feature_dim, 8);
    assert.match(backbone.info.sha256, /^[0-9a-f]{64}$/);
    assert.deepEqual(backbone.files, [onnxModel.path]);
    const features = await backbone.extract(pixels, COUNT);
    assert.ok(maxDiff(features, reference) < 1e-4, `max diff ${maxDiff(features, reference)}`);
  });

  it('ONNX: a model with a fixed batch of 1 still takes batches (run in chunks)', async () => {
    const fixed = await buildTinyConvBackbone({ dir: join(temp.path, 'fixed'), inputSize: SIZE, seed: 3, format: 'onnx', fixedBatch: 1 });
    const backbone = await loadBackbone(fixed.path, { device: 'cpu', featureLayer: 'features', preprocess: 'torch' });
    open.push(backbone);
    const features = await backbone.extract(pixels, COUNT);
    assert.ok(maxDiff(features, reference) < 1e-4, `max diff ${maxDiff(features, reference)}`);
  });

  it('ONNX: by default the features are the graph output', async () => {
    const backbone = await loadBackbone(onnxModel.path, { device: 'cpu', preprocess: 'torch' });
    open.push(backbone);
    assert.equal(backbone.info.feature_layer, 'logits');
    assert.equal(backbone.info.feature_dim, 3);
  });

  it('ONNX: an unknown feature layer is a usage error naming the outputs', async () => {
    await assert.rejects(loadBackbone(onnxModel.path, { device: 'cpu', featureLayer: 'nope' }), (error: Error) => {
      assert.ok(error instanceof UsageError);
      assert.match(error.message, /--feature-layer 'nope'.*logits/);
      return true;
    });
  });

  it('TF.js layers model on wasm in this thread: matches the reference, numTensors stable across batches', async () => {
    const backbone = await loadBackbone(tfjsModel.path, { device: 'wasm', featureLayer: 'features', preprocess: 'torch', workers: 1 });
    open.push(backbone);
    assert.equal(backbone.info.format, 'tfjs-layers');
    assert.equal(backbone.info.layout, 'NHWC');
    assert.equal(backbone.info.feature_dim, 8);
    assert.equal(backbone.files.length, 2);
    const { tf } = await loadTf('wasm');
    const first = await backbone.extract(pixels, COUNT);
    const tensors = tf.memory().numTensors;
    for (let i = 0; i < 3; i++) await backbone.extract(pixels, COUNT);
    assert.equal(tf.memory().numTensors, tensors);
    assert.ok(maxDiff(first, reference) < 1e-4, `max diff ${maxDiff(first, reference)}`);
  });

  it('TF.js on a pool of 2 wasm workers gives the same features, batches in parallel', async () => {
    const backbone = await loadBackbone(tfjsModel.path, { device: 'wasm', featureLayer: 'features', preprocess: 'torch', workers: 2 });
    open.push(backbone);
    assert.equal(backbone.concurrency, 2);
    const half = 2 * SIZE * SIZE * 3;
    const [a, b] = await Promise.all([backbone.extract(pixels.subarray(0, half), 2), backbone.extract(pixels.subarray(half), COUNT - 2)]);
    const both = new Float32Array(COUNT * 8);
    both.set(a, 0);
    both.set(b, 2 * 8);
    assert.ok(maxDiff(both, reference) < 1e-4, `max diff ${maxDiff(both, reference)}`);
  });

  it('TF.js: default features are the model output; an unknown layer is a usage error', async () => {
    const backbone = await loadBackbone(tfjsModel.path, { device: 'wasm', preprocess: 'torch', workers: 1 });
    open.push(backbone);
    assert.equal(backbone.info.feature_layer, 'logits');
    assert.equal(backbone.info.feature_dim, 3);
    await assert.rejects(loadBackbone(tfjsModel.path, { device: 'wasm', featureLayer: 'nope', workers: 1 }), UsageError);
    await assert.rejects(loadBackbone(tfjsModel.path, { device: 'wasm', featureLayer: 'nope', workers: 2 }), UsageError);
  });

  it('TF.js graph model: an intermediate node as the feature layer matches the reference', async () => {
    const graph = await buildTinyConvBackbone({ dir: join(temp.path, 'graph'), inputSize: SIZE, seed: 3, format: 'tfjs-graph' });
    const backbone = await loadBackbone(graph.path, { device: 'wasm', featureLayer: 'features', preprocess: 'torch', workers: 1 });
    open.push(backbone);
    assert.equal(backbone.info.format, 'tfjs-graph');
    assert.equal(backbone.info.input_size, SIZE);
    assert.equal(backbone.info.feature_dim, 8);
    const features = await backbone.extract(pixels, COUNT);
    assert.ok(maxDiff(features, reference) < 1e-4, `max diff ${maxDiff(features, reference)}`);
    const logits = await loadBackbone(graph.path, { device: 'wasm', preprocess: 'torch', workers: 1 });
    open.push(logits);
    assert.equal(logits.info.feature_layer, 'logits');
    assert.equal(logits.info.feature_dim, 3);
    await assert.rejects(loadBackbone(graph.path, { device: 'wasm', featureLayer: 'nope', workers: 1 }), UsageError);
  });

  it('loads a directory holding the model (a model directory backbone/)', async () => {
    const backbone = await loadBackbone(onnxModel.dir, { device: 'cpu', featureLayer: 'features', preprocess: 'torch' });
    open.push(backbone);
    assert.equal(backbone.info.feature_dim, 8);
  });

  it('an unknown spec is a usage error', async () => {
    await assert.rejects(loadBackbone(join(temp.path, 'missing.onnx'), { device: 'cpu' }), UsageError);
  });
});
