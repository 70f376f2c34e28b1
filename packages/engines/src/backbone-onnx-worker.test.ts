import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { buildTinyConvBackbone, makeTempDir, type TempDir, type TinyBackbone } from '@imgpipe/test-utils';
import { loadBackbone, type Backbone } from '@imgpipe/engines';
import { createRng } from '@imgpipe/kit';

// onnxruntime-node runs a session synchronously on the calling thread; offMainThread moves it to a worker so the
// event loop (a server's requests, probes, decodes) keeps running during a batch.
const SIZE = 224;
let temp: TempDir;
let model: TinyBackbone;
let fixed: TinyBackbone;
before(async () => {
  temp = await makeTempDir('imgpipe-onnx-worker-');
  model = await buildTinyConvBackbone({ dir: join(temp.path, 'onnx'), inputSize: SIZE, seed: 5, format: 'onnx', channels: [32, 64] });
  fixed = await buildTinyConvBackbone({ dir: join(temp.path, 'fixed'), inputSize: SIZE, seed: 5, format: 'onnx', channels: [32, 64], fixedBatch: 1 });
});
after(() => temp.remove());

const pixelsOf = (count: number) => {
  const rand = createRng(3);
  return Uint8Array.from({ length: count * SIZE * SIZE * 3 }, () => Math.floor(rand() * 256));
};

/** The longest stretch in which a 5 ms timer could not run, while `work` ran. */
async function longestStall(work: () => Promise<unknown>): Promise<{ stallMs: number; workMs: number }> {
  let last = performance.now();
  let stallMs = 0;
  const timer = setInterval(() => {
    const now = performance.now();
    stallMs = Math.max(stallMs, now - last);
    last = now;
  }, 5);
  const began = performance.now();
  await work();
  const workMs = performance.now() - began;
  clearInterval(timer);
  stallMs = Math.max(stallMs, performance.now() - last);
  return { stallMs, workMs };
}

test('in a worker thread: the same features, chunked the same for a fixed batch size, and the event loop keeps running', async () => {
  const open: Backbone[] = [];
  try {
    const inline = await loadBackbone(model.path, { device: 'cpu', featureLayer: 'features', preprocess: 'torch' });
    const worker = await loadBackbone(model.path, { device: 'cpu', featureLayer: 'features', preprocess: 'torch', offMainThread: true });
    const fixedWorker = await loadBackbone(fixed.path, { device: 'cpu', featureLayer: 'features', preprocess: 'torch', offMainThread: true });
    open.push(inline, worker, fixedWorker);
    assert.equal(worker.device, 'cpu');
    assert.deepEqual(worker.info, inline.info);

    const pixels = pixelsOf(3);
    const expected = await inline.extract(pixels, 3);
    assert.deepEqual(await worker.extract(pixels, 3), expected);
    assert.deepEqual(await fixedWorker.extract(pixels, 3), expected);
    assert.deepEqual(await worker.extract(pixels, 0), new Float32Array(0));

    // A batch big enough to take a while: on this thread it stalls the loop for all of it, in the worker not at all.
    const big = pixelsOf(48);
    const onThread = await longestStall(() => inline.extract(big, 48));
    assert.ok(
      onThread.stallMs > onThread.workMs * 0.5,
      `in this thread the loop stalled ${onThread.stallMs.toFixed(0)} of ${onThread.workMs.toFixed(0)} ms`,
    );
    const offThread = await longestStall(() => worker.extract(big, 48));
    assert.ok(offThread.workMs > 100, `the batch took ${offThread.workMs.toFixed(0)} ms: too short to tell`);
    assert.ok(
      offThread.stallMs < Math.max(60, offThread.workMs / 4),
      `with a worker the loop stalled ${offThread.stallMs.toFixed(0)} of ${offThread.workMs.toFixed(0)} ms`,
    );
  } finally {
    await Promise.all(open.map((b) => b.dispose()));
  }
});

test('the batch buffers the worker hands back carry later batches of other sizes, with the same features', async () => {
  const inline = await loadBackbone(model.path, { device: 'cpu', featureLayer: 'features', preprocess: 'torch' });
  const worker = await loadBackbone(model.path, { device: 'cpu', featureLayer: 'features', preprocess: 'torch', offMainThread: true });
  try {
    // Larger batches first: the smaller ones after them run in larger buffers than they fill.
    for (const sizes of [
      [6, 2],
      [1, 5, 3],
      [4, 4, 1],
    ]) {
      const batches = sizes.map((count, i) => ({ count, pixels: pixelsOf(count).map((v) => (v + i * 37) % 256) }));
      const served = await Promise.all(batches.map(({ pixels, count }) => worker.extract(pixels, count)));
      for (const [i, { pixels, count }] of batches.entries()) assert.deepEqual(served[i], await inline.extract(pixels, count), `batch of ${count}`);
    }
  } finally {
    await Promise.all([inline.dispose(), worker.dispose()]);
  }
});
