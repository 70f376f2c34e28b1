import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DECODE_BUFFER_BYTES, decodeWindow, orderedMap } from './decode-pass.js';

test('decodeWindow keeps the pool busy at the model size and its buffers under DECODE_BUFFER_BYTES at larger sizes', () => {
  const twoThreads = { threads: 2, concurrency: 32 };
  assert.deepEqual(decodeWindow(twoThreads, 224 * 224 * 3), { inFlight: 32, window: 64 });
  for (const size of [224, 512, 1024, 2048]) {
    for (const pool of [twoThreads, { threads: 16, concurrency: 256 }]) {
      const imageBytes = size * size * 3;
      const { inFlight, window } = decodeWindow(pool, imageBytes);
      assert.ok(inFlight >= 1 && inFlight <= pool.concurrency, `${size}: ${inFlight}`);
      assert.ok(window >= inFlight);
      // prep-data makes window + 1 buffers; over the budget only for the floor of one decode per thread.
      const budget = Math.max(DECODE_BUFFER_BYTES, (2 * pool.threads + 1) * imageBytes);
      assert.ok((window + 1) * imageBytes <= budget, `${size} px, ${pool.threads} threads: ${window + 1} buffers`);
    }
  }
  // An image larger than the budget's share still gets one decode per thread.
  assert.equal(decodeWindow(twoThreads, DECODE_BUFFER_BYTES).inFlight, 2);
});

test('orderedMap yields in input order with at most `concurrency` calls running', async () => {
  let running = 0;
  let most = 0;
  const results: number[] = [];
  const items = Array.from({ length: 40 }, (_, i) => i);
  for await (const value of orderedMap(
    items,
    async (item) => {
      running += 1;
      most = Math.max(most, running);
      // Later items finish first: the order must come from orderedMap, not from the calls.
      await new Promise((resolve) => setTimeout(resolve, (40 - item) % 7));
      running -= 1;
      return item * 2;
    },
    5,
    10,
  )) {
    results.push(value);
  }
  assert.deepEqual(
    results,
    items.map((item) => item * 2),
  );
  assert.equal(most, 5);
});
