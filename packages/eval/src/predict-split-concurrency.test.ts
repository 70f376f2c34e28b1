// predictSplit keeps model.concurrency batches in flight (a TF.js wasm backbone with 2 workers) and the output order.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { makeTempDir, writeSyntheticDataset, type TempDir } from '@imgpipe/test-utils';
import { loadModel, type LoadedModel } from '@imgpipe/engines';
import { openDataset, silentLogger, type Dataset } from '@imgpipe/kit';
import { predictSplit } from './predict-split.js';
import { buildTestModelDir } from '@imgpipe/engines/test-model';

const SIZE = 16;
let temp: TempDir;
let dataset: Dataset;
let model: LoadedModel;

before(async () => {
  temp = await makeTempDir('imgpipe-predict-split-');
  await writeSyntheticDataset({ dir: join(temp.path, 'data'), size: SIZE, counts: { train: 2, val: 2, test: 23 } });
  dataset = await openDataset(join(temp.path, 'data'));
  const dir = await buildTestModelDir(join(temp.path, 'model'), { size: SIZE, seed: 4, format: 'tfjs-layers' });
  // The two-part path: the TF.js backbone's wasm workers are what give concurrency 2 (model.onnx runs one session).
  model = await loadModel(dir, { device: 'wasm', workers: 2, wholeModel: false });
});
after(async () => {
  await model?.dispose();
  await temp.remove();
});

/**
 * The model, counting predict() calls running at once. With concurrency > 1 the first call waits (up to 5 s) for a
 * second to start, so that two calls overlap whenever the caller issues them together, however slowly the machine
 * reads the pixels.
 */
function counting(concurrency: number) {
  const stats = { inFlight: 0, most: 0, calls: 0 };
  let second = () => {};
  const secondStarted = new Promise<void>((resolve) => {
    second = resolve;
  });
  const wrapped = {
    labels: model.labels,
    concurrency,
    async predict(pixels: Uint8Array, count: number) {
      stats.calls += 1;
      stats.inFlight += 1;
      stats.most = Math.max(stats.most, stats.inFlight);
      try {
        if (concurrency > 1 && stats.calls === 1) await Promise.race([secondStarted, new Promise((resolve) => setTimeout(resolve, 5000).unref())]);
        else if (stats.calls === 2) second();
        return await model.predict(pixels, count);
      } finally {
        stats.inFlight -= 1;
      }
    },
  };
  return { wrapped, stats };
}

test('with concurrency 2 two batches run at once and the predictions equal the one-at-a-time ones, in order', async () => {
  assert.equal(model.concurrency, 2, 'a TF.js layers backbone on wasm with 2 workers');
  const one = counting(1);
  const sequential = await predictSplit({ model: one.wrapped, dataset, split: 'test', batchSize: 4, log: silentLogger });
  assert.equal(one.stats.most, 1);
  const two = counting(model.concurrency);
  const events: number[] = [];
  const parallel = await predictSplit({
    model: two.wrapped,
    dataset,
    split: 'test',
    batchSize: 4,
    log: silentLogger,
    onProgress: (e) => events.push(e.done),
  });
  assert.equal(two.stats.most, 2, 'never more than concurrency, and more than one');
  assert.equal(two.stats.calls, 6);
  assert.deepEqual(parallel, sequential);
  assert.deepEqual(
    events,
    [...events].sort((a, b) => a - b),
  );
  assert.equal(events.at(-1), 23);
  // Row i is image i of the split.
  const last = await model.predict(await dataset.readPixels('test', 22, 1), 1);
  for (let c = 0; c < 2; c++) assert.ok(Math.abs(parallel[22 * 2 + c]! - last[c]!) < 1e-6);
});
