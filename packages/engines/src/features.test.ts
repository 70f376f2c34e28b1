import assert from 'node:assert/strict';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { buildTinyConvBackbone, makeTempDir, writeSyntheticDataset, type TempDir } from '@imgpipe/test-utils';
import { loadBackbone, type Backbone, extractFeatures } from '@imgpipe/engines';
import { openDataset, type Dataset, UsageError, type ProgressEvent } from '@imgpipe/kit';

const SIZE = 16;

describe('extractFeatures', () => {
  let temp: TempDir;
  let dataset: Dataset;
  let onnx: Backbone;
  let tfjs: Backbone;

  before(async () => {
    temp = await makeTempDir('imgpipe-features-');
    await writeSyntheticDataset({ dir: join(temp.path, 'data'), size: SIZE, counts: { train: 23, val: 5, test: 4 } });
    dataset = await openDataset(join(temp.path, 'data'));
    const onnxModel = await buildTinyConvBackbone({ dir: join(temp.path, 'onnx'), inputSize: SIZE, seed: 5, format: 'onnx' });
    const tfjsModel = await buildTinyConvBackbone({ dir: join(temp.path, 'tfjs'), inputSize: SIZE, seed: 5, format: 'tfjs-layers' });
    onnx = await loadBackbone(onnxModel.path, { device: 'cpu', featureLayer: 'features', preprocess: 'torch' });
    tfjs = await loadBackbone(tfjsModel.path, { device: 'wasm', featureLayer: 'features', preprocess: 'torch', workers: 2 });
  });
  after(async () => {
    await onnx?.dispose();
    await tfjs?.dispose();
    await temp.remove();
  });

  it('computes every image in batches, in split order, with progress that ends at the total', async () => {
    const events: ProgressEvent[] = [];
    const cacheDir = join(temp.path, 'cache-a');
    const result = await extractFeatures({ dataset, split: 'train', backbone: onnx, batchSize: 6, cacheDir, onProgress: (e) => events.push(e) });
    assert.equal(result.fromCache, false);
    assert.equal(result.count, 23);
    assert.equal(result.dim, 8);
    assert.equal(result.features.length, 23 * 8);
    // Row i is image i: compare with the backbone run on single images.
    for (const i of [0, 7, 22]) {
      const one = await onnx.extract(await dataset.readPixels('train', i, 1), 1);
      for (let d = 0; d < 8; d++) assert.ok(Math.abs(result.features[i * 8 + d]! - one[d]!) < 1e-5);
    }
    const done = events.map((e) => e.done);
    assert.deepEqual(
      done,
      [...done].sort((a, b) => a - b),
    );
    assert.equal(events.at(-1)!.status, 'done');
    assert.equal(events.at(-1)!.done, 23);
  });

  it('the second run reads the cache; cache files are complete and nothing temporary is left', async () => {
    const cacheDir = join(temp.path, 'cache-b');
    const first = await extractFeatures({ dataset, split: 'val', backbone: onnx, batchSize: 2, cacheDir });
    const second = await extractFeatures({ dataset, split: 'val', backbone: onnx, batchSize: 3, cacheDir });
    assert.equal(first.fromCache, false);
    assert.equal(second.fromCache, true);
    assert.equal(second.key, first.key);
    assert.deepEqual(second.features, first.features);
    const files = await readdir(join(cacheDir, 'features'));
    assert.deepEqual(files.sort(), [`${first.key}.f32`, `${first.key}.json`]);
    // Another split, another backbone or feature layer: another key.
    const test = await extractFeatures({ dataset, split: 'test', backbone: onnx, batchSize: 3, cacheDir });
    assert.notEqual(test.key, first.key);
    const other = await extractFeatures({ dataset, split: 'val', backbone: tfjs, batchSize: 3, cacheDir });
    assert.equal(other.fromCache, false);
    assert.notEqual(other.key, first.key);
    const noCache = await extractFeatures({ dataset, split: 'val', backbone: onnx, batchSize: 3, cacheDir, cache: false });
    assert.equal(noCache.fromCache, false);
  });

  it('TF.js on 2 wasm workers and ONNX Runtime give the same features for the same net', async () => {
    const cacheDir = join(temp.path, 'cache-c');
    const a = await extractFeatures({ dataset, split: 'train', backbone: onnx, batchSize: 4, cacheDir });
    const b = await extractFeatures({ dataset, split: 'train', backbone: tfjs, batchSize: 4, cacheDir });
    let max = 0;
    for (let i = 0; i < a.features.length; i++) max = Math.max(max, Math.abs(a.features[i]! - b.features[i]!));
    assert.ok(max < 1e-4, `max diff ${max}`);
  });

  it('TF.js in this thread: numTensors is stable, and 2 wasm workers give the same features', async () => {
    const { loadTf } = await import('@imgpipe/engines');
    const { tf } = await loadTf('wasm');
    const tfjsModel = await buildTinyConvBackbone({ dir: join(temp.path, 'tfjs-1'), inputSize: SIZE, seed: 5, format: 'tfjs-layers' });
    const inProcess = await loadBackbone(tfjsModel.path, { device: 'wasm', featureLayer: 'features', preprocess: 'torch', workers: 1 });
    try {
      const before = tf.memory().numTensors;
      const result = await extractFeatures({ dataset, split: 'train', backbone: inProcess, batchSize: 4, cache: false });
      assert.equal(result.count, 23);
      assert.equal(tf.memory().numTensors, before);
      // The pool of 2 real worker threads (started from these .ts sources through tsx) gives the same features.
      assert.equal(tfjs.concurrency, 2);
      const pooled = await extractFeatures({ dataset, split: 'train', backbone: tfjs, batchSize: 4, cache: false });
      assert.deepEqual(pooled.features, result.features, 'worker pool = single thread');
    } finally {
      await inProcess.dispose();
    }
  });

  it('a dataset whose image size differs from the backbone input is a usage error naming the flag', async () => {
    await writeSyntheticDataset({ dir: join(temp.path, 'data32'), size: 32, counts: { train: 2, val: 1, test: 1 } });
    const other = await openDataset(join(temp.path, 'data32'));
    await assert.rejects(extractFeatures({ dataset: other, split: 'train', backbone: onnx, batchSize: 2, cacheDir: temp.path }), (error: Error) => {
      assert.ok(error instanceof UsageError);
      assert.match(error.message, /--img-dimensions 16/);
      return true;
    });
  });
});
