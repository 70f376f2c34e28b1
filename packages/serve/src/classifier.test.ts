// The classifier puts batches together in buffers it keeps: each image's answer is still its own, and no buffer is
// made per batch (a served batch of ResNet50 is 2-5 MB of external memory, which makes V8 collect garbage).
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { test } from 'node:test';
import { createClassifier, type ClassifierModel } from './classifier.js';

const SIZE = 4;
const AREA = SIZE * SIZE * 3;

/** A classifier of batches of up to 8 over `model`, with `decode` for both decoders (no view). */
function classifierOf(model: ClassifierModel, decode: (bytes: Buffer) => Promise<Uint8Array>, maxDelayMs: number) {
  const decodeWithView = async (bytes: Buffer) => ({ pixels: await decode(bytes), view: undefined, format: undefined });
  return createClassifier({ model, decode, decodeWithView, maxBatch: 8, maxDelayMs, maxQueue: 1000 });
}

test('batches are put together in kept buffers, and every image gets its own answer', async () => {
  const seen = new Set<ArrayBufferLike>();
  // Two labels; the probability of the second is the image's first byte / 255 (every byte of an image is the same).
  const model: ClassifierModel = {
    labels: ['dark', 'light'],
    inputSize: SIZE,
    concurrency: 2,
    async predict(pixels, count) {
      if (count > 1) seen.add(pixels.buffer);
      const values = Array.from({ length: count }, (_, i) => pixels[i * AREA]! / 255);
      await sleep(5); // the buffer must stay whole until the answer
      for (let i = 0; i < count; i++) assert.equal(pixels[i * AREA + AREA - 1]! / 255, values[i], 'the batch was overwritten while in use');
      return Float32Array.from(values.flatMap((light) => [1 - light, light]));
    },
  };
  const decode = async (bytes: Buffer) => new Uint8Array(AREA).fill(bytes[0]!);
  const classifier = classifierOf(model, decode, 2);
  for (let wave = 0; wave < 10; wave++) {
    const values = Array.from({ length: 20 }, (_, i) => (wave * 20 + i) % 256);
    const answers = await Promise.all(values.map((value) => classifier.classify([{ name: `${value}`, bytes: Buffer.from([value]) }])));
    for (const [i, [answer]] of answers.entries()) assert.ok(Math.abs(answer!.probs[1]! - values[i]! / 255) < 1e-6, `image ${values[i]}`);
  }
  assert.ok(seen.size >= 1 && seen.size <= 2, `${seen.size} batch buffers for 30 or more batches: at most one per batch running at once`);
});

test('a request does not wait for a batch to fill while no other is being decoded; one being decoded joins it', async () => {
  const batches: number[] = [];
  const model: ClassifierModel = {
    labels: ['dark', 'light'],
    inputSize: SIZE,
    async predict(_pixels, count) {
      batches.push(count);
      return Float32Array.from({ length: count * 2 }, () => 0.5);
    },
  };
  let releaseSlow: () => void = () => {};
  const slowDecoded = new Promise<void>((resolve) => {
    releaseSlow = resolve;
  });
  const decode = async (bytes: Buffer) => {
    if (bytes[0] === 0) await slowDecoded;
    return new Uint8Array(AREA).fill(bytes[0]!);
  };
  const classifier = classifierOf(model, decode, 60_000);
  const timeout = sleep(5_000, 'still waiting', { ref: false });
  assert.notEqual(await Promise.race([classifier.classify([{ name: 'alone', bytes: Buffer.from([1]) }]), timeout]), 'still waiting');
  const slow = classifier.classify([{ name: 'slow', bytes: Buffer.from([0]) }]);
  const quick = classifier.classify([{ name: 'quick', bytes: Buffer.from([2]) }]);
  await sleep(50);
  assert.deepEqual(batches, [1], 'the decoded request waits for the one being decoded');
  releaseSlow();
  assert.notEqual(await Promise.race([Promise.all([slow, quick]), timeout]), 'still waiting');
  assert.deepEqual(batches, [1, 2]);
});
