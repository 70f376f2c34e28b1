import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { Batcher } from './batcher.js';
import { UnavailableError } from './http-error.js';

/** A real batch function: squares numbers after a delay, recording each call's inputs. */
function squarer(delayMs = 5) {
  const calls: number[][] = [];
  let running = 0;
  let maxRunning = 0;
  const predictBatch = async (items: number[]) => {
    calls.push([...items]);
    running += 1;
    maxRunning = Math.max(maxRunning, running);
    await sleep(delayMs);
    running -= 1;
    return items.map((x) => x * x);
  };
  return { calls, predictBatch, maxRunning: () => maxRunning };
}

describe('Batcher', () => {
  it('coalesces concurrent submissions into batches of at most maxBatch, in order', async () => {
    const fn = squarer();
    const batcher = new Batcher({ predictBatch: fn.predictBatch, maxBatch: 4, maxDelayMs: 20, maxQueue: 100 });
    const results = await Promise.all(Array.from({ length: 10 }, (_, i) => batcher.submit(i)));
    assert.deepEqual(
      results,
      Array.from({ length: 10 }, (_, i) => i * i),
    );
    assert.deepEqual(
      fn.calls.map((c) => c.length),
      [4, 4, 2],
    );
    assert.deepEqual(
      fn.calls.flat(),
      Array.from({ length: 10 }, (_, i) => i),
    );
    assert.equal(fn.maxRunning(), 1, 'one batch at a time');
  });

  it('waits at most maxDelayMs for a batch to fill', async () => {
    const fn = squarer(1);
    const batcher = new Batcher({ predictBatch: fn.predictBatch, maxBatch: 64, maxDelayMs: 30, maxQueue: 100 });
    const started = performance.now();
    assert.equal(await batcher.submit(3), 9);
    const waited = performance.now() - started;
    assert.ok(waited >= 25, `waited ${waited} ms`);
    assert.ok(waited < 1000, `waited ${waited} ms`);
    assert.deepEqual(fn.calls, [[3]]);
  });

  it('starts at once when nothing more is coming, and waits for what is', async () => {
    const fn = squarer(1);
    let coming = 1;
    const batcher = new Batcher({ predictBatch: fn.predictBatch, maxBatch: 64, maxDelayMs: 60_000, maxQueue: 100, moreComing: () => coming > 0 });
    const first = batcher.submit(1);
    await sleep(50);
    assert.deepEqual(fn.calls, [], 'waits while another item is on its way');
    coming = 0;
    const timeout = sleep(5_000, 'still waiting', { ref: false });
    assert.deepEqual(await Promise.race([Promise.all([first, batcher.submit(2)]), timeout]), [1, 4]);
    assert.deepEqual(fn.calls, [[1, 2]], 'the item that was coming joined the batch');
    assert.equal(await Promise.race([batcher.submit(3), timeout]), 9, 'one item alone does not wait maxDelayMs');
  });

  it('with maxBatch 1 runs every item alone (batching off)', async () => {
    const fn = squarer(1);
    const batcher = new Batcher({ predictBatch: fn.predictBatch, maxBatch: 1, maxDelayMs: 50, maxQueue: 100 });
    await Promise.all([1, 2, 3].map((x) => batcher.submit(x)));
    assert.deepEqual(fn.calls, [[1], [2], [3]]);
  });

  it("keeps a request's items together and admits all or none when the queue is full", async () => {
    const fn = squarer(20);
    const batcher = new Batcher({ predictBatch: fn.predictBatch, maxBatch: 2, maxDelayMs: 0, maxQueue: 3 });
    const first = batcher.submitAll([1, 2]); // taken by the first batch on the next tick
    await sleep(1);
    const second = batcher.submitAll([3, 4, 5]); // fills the queue
    assert.equal(batcher.depth, 3);
    await assert.rejects(batcher.submitAll([6]), (error: unknown) => {
      assert.ok(error instanceof UnavailableError);
      assert.equal(error.status, 503);
      assert.equal(error.headers['retry-after'], '1');
      assert.match(error.message, /--max-queue/);
      return true;
    });
    assert.equal(batcher.depth, 3, 'a refused request leaves nothing queued');
    assert.deepEqual(await first, [1, 4]);
    assert.deepEqual(await second, [9, 16, 25]);
    await batcher.whenIdle();
    assert.equal(batcher.busy, false);
  });

  it('a failing batch rejects only its own items; later batches run', async () => {
    let call = 0;
    const batcher = new Batcher<number, number>({
      maxBatch: 2,
      maxDelayMs: 0,
      maxQueue: 10,
      predictBatch: async (items) => {
        call += 1;
        if (call === 1) throw new Error('engine failed');
        return items.map((x) => -x);
      },
    });
    const a = assert.rejects(batcher.submitAll([1, 2]), /engine failed/);
    await sleep(1);
    const b = batcher.submitAll([3, 4]);
    await a;
    assert.deepEqual(await b, [-3, -4]);
  });

  it('rejects a batch function that returns the wrong number of outputs', async () => {
    const batcher = new Batcher<number, number>({ maxBatch: 4, maxDelayMs: 0, maxQueue: 10, predictBatch: async () => [1] });
    await assert.rejects(Promise.all([batcher.submit(1), batcher.submit(2)]), /returned 1 outputs for 2 inputs/);
  });

  it('reports batch sizes and resolves whenIdle once drained', async () => {
    const sizes: number[] = [];
    const fn = squarer(5);
    const batcher = new Batcher({ predictBatch: fn.predictBatch, maxBatch: 3, maxDelayMs: 5, maxQueue: 10, onBatch: (size) => sizes.push(size) });
    const all = Promise.all([1, 2, 3, 4].map((x) => batcher.submit(x)));
    await batcher.whenIdle();
    assert.equal(batcher.busy, false);
    assert.deepEqual(sizes, [3, 1]);
    assert.deepEqual(await all, [1, 4, 9, 16]);
  });

  it('runs up to `concurrency` batches at once (a worker pool)', async () => {
    const fn = squarer(20);
    const batcher = new Batcher({ predictBatch: fn.predictBatch, maxBatch: 2, maxDelayMs: 0, maxQueue: 100, concurrency: 2 });
    const results = await Promise.all(Array.from({ length: 8 }, (_, i) => batcher.submit(i)));
    assert.deepEqual(
      results,
      Array.from({ length: 8 }, (_, i) => i * i),
    );
    assert.equal(fn.maxRunning(), 2);
    assert.deepEqual(
      fn.calls.map((c) => c.length),
      [2, 2, 2, 2],
    );
  });

  it('refuses bad options', () => {
    const predictBatch = async (items: number[]) => items;
    assert.throws(() => new Batcher({ predictBatch, maxBatch: 0, maxDelayMs: 0, maxQueue: 1 }), /maxBatch/);
    assert.throws(() => new Batcher({ predictBatch, maxBatch: 1, maxDelayMs: -1, maxQueue: 1 }), /maxDelayMs/);
    assert.throws(() => new Batcher({ predictBatch, maxBatch: 1, maxDelayMs: 0, maxQueue: 0 }), /maxQueue/);
    assert.throws(() => new Batcher({ predictBatch, maxBatch: 1, maxDelayMs: 0, maxQueue: 1, concurrency: 0 }), /concurrency/);
  });
});
