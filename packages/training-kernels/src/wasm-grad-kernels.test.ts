import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Tensor4D } from '@tensorflow/tfjs-core';
import { createRng } from '@imgpipe/kit';
import { loadTf } from '@imgpipe/engines';
import { registerTrainingKernels } from './register-training-kernels.js';

const { tf } = await loadTf('wasm');
registerTrainingKernels(tf);

/** dLoss/dfilter of conv2d written out as loops (NHWC, HWIO), for loss = sum(conv2d(x, f) * dy). */
function naiveFilterGrad(
  x: Float32Array,
  xs: number[],
  dy: Float32Array,
  dys: number[],
  fs: number[],
  stride: number,
  top: number,
  left: number,
): Float32Array {
  const [n, h, w, ci] = xs as [number, number, number, number];
  const [, oh, ow, co] = dys as [number, number, number, number];
  const [fh, fw] = fs as [number, number];
  const out = new Float32Array(fh * fw * ci * co);
  for (let a = 0; a < fh; a++)
    for (let b = 0; b < fw; b++)
      for (let c = 0; c < ci; c++)
        for (let o = 0; o < co; o++) {
          let sum = 0;
          for (let b0 = 0; b0 < n; b0++)
            for (let i = 0; i < oh; i++)
              for (let j = 0; j < ow; j++) {
                const r = i * stride + a - top;
                const q = j * stride + b - left;
                if (r < 0 || r >= h || q < 0 || q >= w) continue;
                sum += x[((b0 * h + r) * w + q) * ci + c]! * dy[((b0 * oh + i) * ow + j) * co + o]!;
              }
          out[((a * fw + b) * ci + c) * co + o] = sum;
        }
  return out;
}

/** dLoss/dx of conv2d written out as loops, for loss = sum(conv2d(x, f) * dy). */
function naiveInputGrad(
  f: Float32Array,
  xs: number[],
  dy: Float32Array,
  dys: number[],
  fs: number[],
  stride: number,
  top: number,
  left: number,
): Float32Array {
  const [n, h, w, ci] = xs as [number, number, number, number];
  const [, oh, ow, co] = dys as [number, number, number, number];
  const [fh, fw] = fs as [number, number];
  const out = new Float32Array(n * h * w * ci);
  for (let b0 = 0; b0 < n; b0++)
    for (let i = 0; i < oh; i++)
      for (let j = 0; j < ow; j++)
        for (let a = 0; a < fh; a++)
          for (let b = 0; b < fw; b++) {
            const r = i * stride + a - top;
            const q = j * stride + b - left;
            if (r < 0 || r >= h || q < 0 || q >= w) continue;
            for (let c = 0; c < ci; c++)
              for (let o = 0; o < co; o++)
                out[((b0 * h + r) * w + q) * ci + c]! += f[((a * fw + b) * ci + c) * co + o]! * dy[((b0 * oh + i) * ow + j) * co + o]!;
          }
  return out;
}

test('wasm Conv2DBackpropFilter and Conv2DBackpropInput (as XNNPACK convolutions, and their fast paths) match the gradients written out as loops, 3 and 6 input channels', () => {
  assert.equal(tf.getBackend(), 'wasm');
  const rng = createRng(4);
  const cases = [
    { size: 9, k: 3, stride: 1, pad: 'same' as const },
    { size: 9, k: 3, stride: 2, pad: 'same' as const },
    { size: 10, k: 3, stride: 2, pad: 'valid' as const }, // the last row of x is never read: x is cropped
    { size: 8, k: 1, stride: 2, pad: 'valid' as const },
    { size: 11, k: 7, stride: 2, pad: 'same' as const },
    { size: 7, k: 2, stride: 1, pad: 'valid' as const },
    { size: 8, k: 3, stride: 2, pad: 'same' as const }, // even size: the last rows of x get no gradient from some taps
    { size: 12, k: 3, stride: 3, pad: 'valid' as const },
  ];
  // 3 input channels take the image fast paths of wasm-conv-grad-fast-paths.ts where they apply; 6 the kernels here.
  for (const [{ size, k, stride, pad }, ci] of cases.flatMap(
    (c) =>
      [
        [c, 3],
        [c, 6],
      ] as const,
  )) {
    const [n, co] = [2, 4];
    const xs = [n, size, size, ci];
    const fs = [k, k, ci, co];
    const before = tf.memory().numTensors;
    const { grad, gradX, dyShape, dyData, xData, fData } = tf.tidy(() => {
      const x = tf.tensor4d(
        Float32Array.from({ length: n * size * size * ci }, () => rng() - 0.5),
        xs as [number, number, number, number],
      );
      const f = tf.tensor4d(
        Float32Array.from({ length: k * k * ci * co }, () => rng() - 0.5),
        fs as [number, number, number, number],
      );
      const outShape = tf.conv2d(x, f, stride, pad).shape;
      const dy = tf.tensor4d(
        Float32Array.from({ length: outShape.reduce((a, b) => a * b, 1) }, () => rng() - 0.5),
        outShape,
      );
      const g = tf.grad((filter) => tf.sum(tf.mul(tf.conv2d(x, filter as Tensor4D, stride, pad), dy)))(f);
      const gx = tf.grad((input) => tf.sum(tf.mul(tf.conv2d(input as Tensor4D, f, stride, pad), dy)))(x);
      return {
        grad: g.dataSync() as Float32Array,
        gradX: gx.dataSync() as Float32Array,
        dyShape: outShape,
        dyData: dy.dataSync() as Float32Array,
        xData: x.dataSync() as Float32Array,
        fData: f.dataSync() as Float32Array,
      };
    });
    assert.equal(tf.memory().numTensors, before, 'no tensors left');
    const [oh] = [dyShape[1]];
    const padTotal = Math.max(0, (oh - 1) * stride + k - size);
    const top = pad === 'same' ? Math.floor(padTotal / 2) : 0;
    const expected = naiveFilterGrad(xData, xs, dyData, dyShape, fs, stride, top, top);
    let max = 0;
    for (let i = 0; i < expected.length; i++) max = Math.max(max, Math.abs(grad[i]! - expected[i]!));
    assert.ok(
      expected.some((v) => Math.abs(v) > 0.1),
      'the gradient is not trivially zero',
    );
    assert.ok(max < 1e-4, `filter gradient, size ${size} kernel ${k} stride ${stride} ${pad}, ${ci} channels: max difference ${max}`);
    const expectedX = naiveInputGrad(fData, xs, dyData, dyShape, fs, stride, top, top);
    let maxX = 0;
    for (let i = 0; i < expectedX.length; i++) maxX = Math.max(maxX, Math.abs(gradX[i]! - expectedX[i]!));
    assert.ok(
      expectedX.some((v) => Math.abs(v) > 0.1),
      'the input gradient is not trivially zero',
    );
    assert.ok(maxX < 1e-4, `input gradient, size ${size} kernel ${k} stride ${stride} ${pad}, ${ci} channels: max difference ${maxX}`);
  }
});
