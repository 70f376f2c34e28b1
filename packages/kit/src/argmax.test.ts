import assert from 'node:assert/strict';
import { test } from 'node:test';
import { argmax, argmaxRows } from './argmax.js';

test('argmax picks the largest value, the first index on ties, never a NaN; -1 for nothing', () => {
  assert.equal(argmax([0.1, 0.7, 0.2]), 1);
  assert.equal(argmax([0.4, 0.6, 0.6]), 1, 'ties: the first');
  assert.equal(argmax([Number.NaN, 0.2, 0.9]), 0, 'a NaN in front stays (nothing compares greater), as the loops it replaced did');
  assert.equal(argmax([0.2, Number.NaN, 0.9]), 2);
  assert.equal(argmax(Float32Array.of(-3, -1, -2)), 1);
  assert.equal(argmax([]), -1);
});

test('argmax over a slice counts from its offset', () => {
  const values = [9, 1, 5, 3, 9];
  assert.equal(argmax(values, 1, 3), 1, 'largest of [1, 5, 3] is its second');
  assert.equal(argmax(values, 3), 1, 'from 3 to the end: [3, 9]');
  assert.equal(argmax(values, 2, 0), -1);
});

test('argmaxRows gives each row its own arg max', () => {
  assert.deepEqual([...argmaxRows(Float32Array.of(0.5, 0.5, 0.2, 0.8, 0.4, 0.4), 2)], [0, 1, 0]);
  assert.deepEqual([...argmaxRows([0.1, 0.2, 0.7, 0.3, 0.3, 0.3], 3)], [2, 0]);
  assert.deepEqual([...argmaxRows([], 4)], []);
});
