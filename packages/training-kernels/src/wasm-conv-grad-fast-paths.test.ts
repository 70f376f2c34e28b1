import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Tensor, Tensor4D } from '@tensorflow/tfjs-core';
import { createRng } from '@imgpipe/kit';
import { loadTf } from '@imgpipe/engines';
import { registerTrainingKernels } from './register-training-kernels.js';

const { tf } = await loadTf('wasm');
registerTrainingKernels(tf);

test('wasm conv gradient fast paths (1x1 filter and input gradients as matmuls, image filter gradients by im2col, strided image input gradients by col2im) match the cpu backend', async () => {
  const rng = createRng(3);
  const random = (shape: number[]) =>
    tf.tensor4d(
      Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => rng() - 0.5),
      shape as [number, number, number, number],
    );
  const cases = [
    { x: [2, 7, 5, 6], f: [1, 1, 6, 4], stride: 1, pad: 'same' as const }, // filter and input: matmuls
    { x: [2, 6, 6, 5], f: [1, 1, 5, 3], stride: 1, pad: 'valid' as const },
    { x: [2, 9, 9, 3], f: [3, 3, 3, 4], stride: 2, pad: 'same' as const }, // input: col2im; filter: im2col
    { x: [2, 8, 10, 3], f: [3, 3, 3, 4], stride: 2, pad: 'same' as const },
    { x: [1, 11, 11, 1], f: [7, 7, 1, 5], stride: 2, pad: 'same' as const },
    { x: [2, 10, 9, 4], f: [3, 2, 4, 2], stride: 3, pad: 'valid' as const },
    { x: [2, 6, 7, 2], f: [3, 3, 2, 5], stride: 1, pad: 'same' as const }, // filter: im2col at stride 1
    { x: [1, 12, 12, 3], f: [7, 7, 3, 4], stride: 2, pad: 'same' as const }, // ResNet's first conv, small
  ];
  for (const c of cases) {
    const label = JSON.stringify(c);
    const before = tf.memory().numTensors;
    const x = random(c.x);
    const f = random(c.f);
    const probe = tf.conv2d(x, f, c.stride, c.pad);
    const dy = random(probe.shape);
    probe.dispose();
    const loss = (a: Tensor, b: Tensor) => tf.sum(tf.mul(tf.conv2d(a as Tensor4D, b as Tensor4D, c.stride, c.pad), dy));
    const wasm = tf.grads(loss)([x, f]);
    tf.env().set('PROD', true); // no "install tfjs-node" banner from the cpu backend
    await tf.setBackend('cpu');
    const cpu = tf.grads(loss)([x, f]);
    await tf.setBackend('wasm');
    tf.env().set('PROD', false);
    for (const [i, name] of ['input', 'filter'].entries()) {
      const [a, b] = [wasm[i]!.dataSync(), cpu[i]!.dataSync()];
      assert.ok(
        b.some((v) => Math.abs(v) > 0.1),
        `${label}: ${name} gradient is not trivially zero`,
      );
      let max = 0;
      for (let j = 0; j < a.length; j++) max = Math.max(max, Math.abs(a[j]! - b[j]!));
      assert.ok(max < 1e-5, `${label}: ${name} gradient differs by ${max}`);
    }
    tf.dispose([x, f, dy, ...wasm, ...cpu]);
    assert.equal(tf.memory().numTensors, before, `${label}: no tensors left`);
  }
});
