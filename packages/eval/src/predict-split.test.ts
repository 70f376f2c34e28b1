import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { openDataset, silentLogger, type Dataset } from '@imgpipe/kit';
import { makeTempDir, writeSyntheticDataset, type TempDir } from '@imgpipe/test-utils';
import { predictSplit } from './predict-split.js';

const SIZE = 4;
let temp: TempDir;
let dataset: Dataset;
before(async () => {
  temp = await makeTempDir('imgpipe-predict-split-');
  dataset = await openDataset(await writeSyntheticDataset({ dir: join(temp.path, 'data'), size: SIZE, counts: { train: 1, val: 1, test: 23 } }));
});
after(() => temp.remove());

/** A model whose "probabilities" are each image's first two pixel values, answering after a varying delay. */
function echoModel(concurrency: number, failOnBatch?: number) {
  const stats = { inFlight: 0, maxInFlight: 0, calls: 0, failed: false, startedAfterFailure: 0 };
  const model = {
    labels: ['a', 'b'],
    concurrency,
    async predict(pixels: Uint8Array, count: number) {
      const call = stats.calls++;
      if (stats.failed) stats.startedAfterFailure++;
      stats.inFlight++;
      stats.maxInFlight = Math.max(stats.maxInFlight, stats.inFlight);
      await sleep(5 + ((call * 7) % 4) * 5); // later batches often finish first
      stats.inFlight--;
      if (call === failOnBatch) {
        stats.failed = true;
        throw new Error(`batch ${call} failed`);
      }
      return Float32Array.from({ length: count * 2 }, (_, i) => pixels[Math.floor(i / 2) * SIZE * SIZE * 3 + (i % 2)]!);
    },
  };
  return { model, stats };
}

test('predictSplit keeps model.concurrency batches in flight and returns the rows in split order', async () => {
  const pixels = await dataset.readPixels('test', 0, 23);
  const expected = Float32Array.from({ length: 46 }, (_, i) => pixels[Math.floor(i / 2) * SIZE * SIZE * 3 + (i % 2)]!);
  for (const concurrency of [1, 3]) {
    const { model, stats } = echoModel(concurrency);
    const probs = await predictSplit({ model, dataset, split: 'test', batchSize: 4, log: silentLogger });
    assert.deepEqual(probs, expected, `concurrency ${concurrency}: rows in order`);
    assert.equal(stats.calls, 6, 'ceil(23 / 4) batches');
    assert.equal(stats.maxInFlight, concurrency, `concurrency ${concurrency}: batches in flight`);
  }
});

test('predictSplit fails with the first failing batch and starts no batch after it', async () => {
  const { model, stats } = echoModel(2, 1);
  await assert.rejects(predictSplit({ model, dataset, split: 'test', batchSize: 2, log: silentLogger }), /batch 1 failed/);
  await sleep(200);
  assert.equal(stats.startedAfterFailure, 0, 'batches started after the failure');
  assert.ok(stats.calls < 12, `${stats.calls} of 12 batches started`);
});

test('a batch still reading its pixels when another fails predicts nothing (CI under load found two such)', async () => {
  // Pixels that take longer to read than a batch to fail: every batch after the first two is still reading when
  // batch 1 fails, the way a loaded machine's reads lag.
  const slow: Dataset = Object.create(dataset, {
    readPixels: {
      value: async (split: 'train' | 'val' | 'test', start: number, n: number) => {
        if (start >= 4) await sleep(40);
        return dataset.readPixels(split, start, n);
      },
    },
  });
  const { model, stats } = echoModel(3, 1);
  await assert.rejects(predictSplit({ model, dataset: slow, split: 'test', batchSize: 2, log: silentLogger }), /batch 1 failed/);
  await sleep(200);
  assert.equal(stats.startedAfterFailure, 0, 'batches started after the failure');
});
