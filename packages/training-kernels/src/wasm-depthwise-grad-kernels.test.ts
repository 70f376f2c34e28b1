import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Tensor, Tensor4D } from '@tensorflow/tfjs-core';
import { createRng } from '@imgpipe/kit';
import { loadTf } from '@imgpipe/engines';
import { registerTrainingKernels } from './register-training-kernels.js';

const { tf } = await loadTf('wasm');
registerTrainingKernels(tf);

interface Case {
  size: [number, number];
  k: [number, number];
  stride: number;
  pad: 'same' | 'valid';
  m: number;
  dilation?: number;
}

/** Both gradients of loss = sum(depthwiseConv2d(x, f) * dy), written out as loops (NHWC; f is [kh, kw, C, m]). */
function loopGrads(x: Float32Array, f: Float32Array, dy: Float32Array, xs: number[], c: Case, oh: number, ow: number, top: number, left: number) {
  const [n, h, w, ch] = xs as [number, number, number, number];
  const [kh, kw] = c.k;
  const d = c.dilation ?? 1;
  const dx = new Float64Array(x.length);
  const df = new Float64Array(f.length);
  for (let b = 0; b < n; b++)
    for (let i = 0; i < oh; i++)
      for (let j = 0; j < ow; j++)
        for (let a = 0; a < kh; a++)
          for (let e = 0; e < kw; e++) {
            const r = i * c.stride + a * d - top;
            const s = j * c.stride + e * d - left;
            if (r < 0 || r >= h || s < 0 || s >= w) continue;
            for (let k = 0; k < ch; k++)
              for (let q = 0; q < c.m; q++) {
                const g = dy[((b * oh + i) * ow + j) * ch * c.m + k * c.m + q]!;
                const xi = ((b * h + r) * w + s) * ch + k;
                const fi = ((a * kw + e) * ch + k) * c.m + q;
                dx[xi]! += f[fi]! * g;
                df[fi]! += x[xi]! * g;
              }
          }
  return { dx, df };
}

function maxDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let max = 0;
  for (let i = 0; i < a.length; i++) max = Math.max(max, Math.abs(a[i]! - b[i]!));
  return max;
}

const CASES: Case[] = [
  { size: [9, 9], k: [3, 3], stride: 1, pad: 'same', m: 1 },
  { size: [9, 9], k: [3, 3], stride: 2, pad: 'same', m: 1 },
  { size: [8, 8], k: [3, 3], stride: 2, pad: 'same', m: 1 }, // even: SAME pads only after
  { size: [10, 7], k: [3, 3], stride: 2, pad: 'valid', m: 1 }, // the last row of x is never read
  { size: [11, 11], k: [5, 5], stride: 2, pad: 'same', m: 1 },
  { size: [7, 9], k: [3, 2], stride: 1, pad: 'valid', m: 1 },
  { size: [9, 9], k: [3, 3], stride: 1, pad: 'same', m: 2 },
  { size: [9, 8], k: [3, 3], stride: 2, pad: 'valid', m: 3 },
  { size: [12, 12], k: [3, 3], stride: 3, pad: 'same', m: 1 },
  { size: [11, 10], k: [3, 3], stride: 1, pad: 'same', m: 1, dilation: 2 },
  { size: [11, 11], k: [3, 3], stride: 1, pad: 'valid', m: 2, dilation: 2 },
];

test('wasm depthwise conv gradient kernels match loops and the cpu backend (strides 1-3, SAME/VALID, multipliers 1-3, dilation 2, 5 and 8 channels)', async () => {
  assert.equal(tf.getBackend(), 'wasm');
  assert.ok(tf.getKernel('DepthwiseConv2dNativeBackpropInput', 'wasm') && tf.getKernel('DepthwiseConv2dNativeBackpropFilter', 'wasm'));
  const rng = createRng(7);
  const random = (shape: number[]) =>
    tf.tensor(
      Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => rng() - 0.5),
      shape,
    );
  // 8 channels take the SIMD filter gradient (multiplier 1), 5 the JavaScript one.
  for (const [c, ch] of CASES.flatMap(
    (c) =>
      [
        [c, 5],
        [c, 8],
      ] as const,
  )) {
    const label = `${JSON.stringify(c)} ${ch} channels`;
    const xs = [2, c.size[0], c.size[1], ch];
    const fs = [c.k[0], c.k[1], ch, c.m];
    const d = c.dilation ?? 1;
    const before = tf.memory().numTensors;
    const x = random(xs) as Tensor4D;
    const f = random(fs) as Tensor4D;
    const y = tf.depthwiseConv2d(x, f, c.stride, c.pad, 'NHWC', d);
    const dy = random(y.shape) as Tensor4D;
    const attrs = { strides: c.stride, pad: c.pad, dilations: d };
    const dx = tf.engine().runKernel('DepthwiseConv2dNativeBackpropInput', { dy, filter: f }, { ...attrs, inputShape: xs }) as Tensor;
    const df = tf.engine().runKernel('DepthwiseConv2dNativeBackpropFilter', { x, dy }, { ...attrs, filterShape: fs }) as Tensor;
    assert.deepEqual(dx.shape, xs, label);
    assert.deepEqual(df.shape, fs, label);
    const [, oh, ow] = y.shape;
    const padH = Math.max(0, (oh - 1) * c.stride + (c.k[0] - 1) * d + 1 - c.size[0]);
    const padW = Math.max(0, (ow - 1) * c.stride + (c.k[1] - 1) * d + 1 - c.size[1]);
    const [top, left] = c.pad === 'same' ? [Math.floor(padH / 2), Math.floor(padW / 2)] : [0, 0];
    const expected = loopGrads(x.dataSync() as Float32Array, f.dataSync() as Float32Array, dy.dataSync() as Float32Array, xs, c, oh, ow, top, left);
    assert.ok(expected.df.some((v) => Math.abs(v) > 0.1) && expected.dx.some((v) => Math.abs(v) > 0.1), `${label}: gradients are not trivially zero`);
    const dxData = dx.dataSync();
    const dfData = df.dataSync();
    assert.ok(maxDiff(dxData, expected.dx) < 1e-5, `${label}: input gradient differs from the loops by ${maxDiff(dxData, expected.dx)}`);
    assert.ok(maxDiff(dfData, expected.df) < 1e-5, `${label}: filter gradient differs from the loops by ${maxDiff(dfData, expected.df)}`);
    if (d === 1) {
      // The same gradients through tf.grads (as training gets them), on TF.js's JavaScript cpu backend.
      const loss = (a: Tensor, b: Tensor) => tf.sum(tf.mul(tf.depthwiseConv2d(a as Tensor4D, b as Tensor4D, c.stride, c.pad), dy));
      const [wasmDx, wasmDf] = tf.grads(loss)([x, f]);
      tf.env().set('PROD', true); // no "install tfjs-node" banner from the cpu backend
      await tf.setBackend('cpu');
      const [cpuDx, cpuDf] = tf.grads(loss)([x, f]);
      const cpu = [cpuDx!.dataSync(), cpuDf!.dataSync()];
      await tf.setBackend('wasm');
      tf.env().set('PROD', false);
      assert.ok(maxDiff(wasmDx!.dataSync(), cpu[0]!) < 1e-5, `${label}: tf.grads input gradient, wasm vs cpu`);
      assert.ok(maxDiff(wasmDf!.dataSync(), cpu[1]!) < 1e-5, `${label}: tf.grads filter gradient, wasm vs cpu`);
      tf.dispose([wasmDx!, wasmDf!, cpuDx!, cpuDf!]);
    }
    tf.dispose([x, f, y, dy, dx, df]);
    assert.equal(tf.memory().numTensors, before, `${label}: no tensors left`);
  }
});
