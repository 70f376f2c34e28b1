// The classifier puts batches together in buffers it keeps: each image's answer is still its own, and no buffer is
// made per batch (a served batch of ResNet50 is 2-5 MB of external memory, which makes V8 collect garbage).
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { test } from 'node:test';
import { createClassifier, type ClassifierModel } from './classifier.js';

const SIZE = 4;
const AREA = SIZE * SIZE * 3;

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
  const classifier = createClassifier({
    model,
    decode,
    decodeWithView: async (bytes) => ({ pixels: await decode(bytes), view: undefined, format: undefined }),
    maxBatch: 8,
    maxDelayMs: 2,
    maxQueue: 1000,
  });
  for (let wave = 0; wave < 10; wave++) {
    const values = Array.from({ length: 20 }, (_, i) => (wave * 20 + i) % 256);
    const answers = await Promise.all(values.map((value) => classifier.classify([{ name: `${value}`, bytes: Buffer.from([value]) }])));
    for (const [i, [answer]] of answers.entries()) assert.ok(Math.abs(answer!.probs[1]! - values[i]! / 255) < 1e-6, `image ${values[i]}`);
  }
  assert.ok(seen.size >= 1 && seen.size <= 2, `${seen.size} batch buffers for 30 or more batches: at most one per batch running at once`);
});
