import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Tensor } from '@tensorflow/tfjs-core';
import { createRng } from '@imgpipe/kit';
import { loadTf } from '@imgpipe/engines';
import { registerTrainingKernels } from './register-training-kernels.js';

const { tf } = await loadTf('wasm');
registerTrainingKernels(tf);

test("engines' wasm replacements (Tile, comparisons, Min/Max, Select, LogicalAnd, FusedBatchNorm, leading-axes Sum/Mean) match the cpu backend", async () => {
  const rng = createRng(11);
  const values = (n: number) => Float32Array.from({ length: n }, () => Math.round((rng() - 0.5) * 16) / 4); // ties for the comparisons
  const t = (shape: number[]) => tf.tensor(values(shape.reduce((a, b) => a * b, 1)), shape);
  const x = t([2, 5, 3, 4]);
  const x2 = t([2, 5, 3, 4]);
  const v = t([4]);
  const s = tf.scalar(0.5);
  const mask = tf.greater(x2, s);
  const variance = tf.abs(t([4]));
  const other = t([5, 1, 4]);
  const cases: [string, () => Tensor][] = [
    ['tile [1,1,1,4] -> [2,5,3,4]', () => tf.tile(tf.reshape(v, [1, 1, 1, 4]), [2, 5, 3, 1])],
    ['tile of every axis', () => tf.tile(x, [2, 1, 3, 2])],
    ['tile of an int32 vector', () => tf.tile(tf.tensor1d([1, 2, 3], 'int32'), [3])],
    ['greater(scalar, x)', () => tf.greater(s, x)],
    ['greaterEqual(x, x2)', () => tf.greaterEqual(x, x2)],
    ['less(x, scalar)', () => tf.less(x, s)],
    ['lessEqual(x, x2)', () => tf.lessEqual(x, x2)],
    ['greater(x, v) (broadcast: the original kernel)', () => tf.greater(x, v)],
    ['minimum(6, x)', () => tf.minimum(tf.scalar(0.25), x)],
    ['maximum(x, x2)', () => tf.maximum(x, x2)],
    ['logicalAnd', () => tf.logicalAnd(mask, tf.less(x, s))],
    ['where', () => tf.where(mask, x, x2)],
    ['batchNorm, per-channel parameters', () => tf.batchNorm(x, v, variance, tf.add(v, 1), tf.sub(v, 1), 1e-3)],
    ['batchNorm, no offset or scale', () => tf.batchNorm(x, v, variance, undefined, undefined, 1e-3)],
    ['maximum(x, [5, 1, 4]) (a broadcast: the original kernel)', () => tf.maximum(x, other)],
    ['sum over [0, 1, 2]', () => tf.sum(x, [0, 1, 2])],
    ['sum over [0, 1] kept', () => tf.sum(x, [1, 0], true)],
    ['mean over [0, 1, 2]', () => tf.mean(x, [0, 1, 2])],
    ['mean over [1, 2] (the original kernel)', () => tf.mean(x, [1, 2])],
  ];
  const wasm = cases.map(([, f]) => tf.tidy(f));
  tf.env().set('PROD', true); // no "install tfjs-node" banner from the cpu backend
  await tf.setBackend('cpu');
  const cpu = cases.map(([, f]) => tf.tidy(f));
  await tf.setBackend('wasm');
  tf.env().set('PROD', false);
  cases.forEach(([name], i) => {
    assert.deepEqual(wasm[i]!.shape, cpu[i]!.shape, name);
    assert.equal(wasm[i]!.dtype, cpu[i]!.dtype, name);
    const [a, b] = [wasm[i]!.dataSync(), cpu[i]!.dataSync()];
    for (let j = 0; j < a.length; j++)
      assert.ok(Math.abs(a[j]! - b[j]!) <= 1e-5 * Math.max(1, Math.abs(b[j]!)), `${name}: element ${j}: ${a[j]} vs ${b[j]}`);
  });
  assert.ok(
    cpu.some((r) => r.dtype === 'bool' && r.dataSync().some((e) => e === 1) && r.dataSync().some((e) => e === 0)),
    'the masks have both values',
  );
  tf.dispose([...wasm, ...cpu, x, x2, v, s, mask, variance, other]);
});

test('wasm Identity shares the buffer: a clone outlives its source and frees the memory with the last reference', () => {
  const buffers = tf.memory().numDataBuffers;
  const source = tf.tensor1d([1, 2, 3]);
  const copy = tf.clone(source);
  assert.equal(tf.memory().numDataBuffers, buffers + 1, 'one buffer for both');
  source.dispose();
  assert.deepEqual([...copy.dataSync()], [1, 2, 3]);
  copy.dispose();
  assert.equal(tf.memory().numDataBuffers, buffers);
});
