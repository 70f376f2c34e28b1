import assert from 'node:assert/strict';
import { test } from 'node:test';
import { argmaxRows } from '@imgpipe/kit';
import {
  accuracy,
  binaryRocAuc,
  computeMetrics,
  confusionMatrix,
  crossEntropy,
  EPSILON,
  formatFloat32,
  perClassMetrics,
  rocAuc,
  worstMistakes,
} from './metrics.js';

const close = (actual: number, expected: number, tolerance = 1e-12) =>
  assert.ok(Math.abs(actual - expected) <= tolerance, `expected ${expected}, got ${actual}`);

// 3 classes, 6 rows: rows 0,1,3 right; 2 (true 1 -> 2), 4 (true 2 -> 0), 5 (true 0 -> 1) wrong.
const probs3 = [
  0.7,
  0.2,
  0.1, //
  0.1,
  0.8,
  0.1,
  0.1,
  0.3,
  0.6,
  0.2,
  0.2,
  0.6,
  0.5,
  0.4,
  0.1,
  0.3,
  0.45,
  0.25,
];
const labels3 = [0, 1, 1, 2, 2, 0];

test('accuracy and cross-entropy by hand', () => {
  close(accuracy(probs3, labels3, 3), 3 / 6);
  const expected = -(Math.log(0.7) + Math.log(0.8) + Math.log(0.3) + Math.log(0.6) + Math.log(0.1) + Math.log(0.3)) / 6;
  close(crossEntropy(probs3, labels3, 3), expected);
  // A zero probability on the true class is clipped, not infinite.
  close(crossEntropy([1, 0], [1], 2), -Math.log(EPSILON));
  assert.ok(Number.isNaN(accuracy([], [], 2)));
});

test('shape and label errors are caught', () => {
  assert.throws(() => accuracy([0.5, 0.5, 1], [0], 2), /expected 1x2 probabilities/);
  assert.throws(() => crossEntropy([0.5, 0.5], [2], 2), /labels\[0\] = 2/);
});

test('confusion matrix: rows true, columns predicted, adds up to the rows', () => {
  const matrix = confusionMatrix(argmaxRows(probs3, 3), labels3, 3);
  assert.deepEqual(matrix, [
    [1, 1, 0],
    [0, 1, 1],
    [1, 0, 1],
  ]);
  assert.equal(
    matrix.flat().reduce((a, b) => a + b, 0),
    labels3.length,
  );
});

test('per-class precision, recall, F1 and support; zero denominators give 0', () => {
  const metrics = perClassMetrics(
    [
      [3, 1, 0],
      [2, 4, 0],
      [1, 0, 0],
    ],
    ['a', 'b', 'c'],
  );
  close(metrics[0]!.precision, 3 / 6);
  close(metrics[0]!.recall, 3 / 4);
  close(metrics[0]!.f1, (2 * 0.5 * 0.75) / 1.25);
  assert.equal(metrics[0]!.support, 4);
  close(metrics[1]!.precision, 4 / 5);
  close(metrics[1]!.recall, 4 / 6);
  assert.deepEqual(metrics[2], { label: 'c', precision: 0, recall: 0, f1: 0, support: 1 });
});

/** AUC by definition: over every (positive, negative) pair, 1 when the positive scores higher, 1/2 on a tie. */
function pairwiseAuc(scores: number[], positive: boolean[]): number {
  let sum = 0;
  let pairs = 0;
  scores.forEach((s, i) => {
    if (!positive[i]) return;
    scores.forEach((t, j) => {
      if (positive[j]) return;
      pairs++;
      sum += s > t ? 1 : s === t ? 0.5 : 0;
    });
  });
  return sum / pairs;
}

test('ROC AUC: perfect, reversed, ties, and agreement with the pairwise definition', () => {
  assert.equal(rocAuc([0.1, 0.2, 0.8, 0.9], [false, false, true, true]), 1);
  assert.equal(rocAuc([0.9, 0.8, 0.2, 0.1], [false, false, true, true]), 0);
  assert.equal(rocAuc([0.5, 0.5, 0.5, 0.5], [false, true, false, true]), 0.5);
  close(rocAuc([0.1, 0.4, 0.35, 0.8], [false, false, true, true])!, 0.75);
  assert.equal(rocAuc([0.3, 0.6], [true, true]), null);
  // Random scores with many ties (few distinct values).
  let seed = 12345;
  const rand = () => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    return seed / 2 ** 31;
  };
  const scores = Array.from({ length: 200 }, () => Math.floor(rand() * 7) / 7);
  const positive = scores.map((s) => rand() < 0.3 + s * 0.5);
  close(rocAuc(scores, positive)!, pairwiseAuc(scores, positive), 1e-12);
});

test('binary ROC AUC uses p(class 1); undefined for more classes', () => {
  const probs = [0.9, 0.1, 0.6, 0.4, 0.3, 0.7, 0.45, 0.55];
  close(binaryRocAuc(probs, [0, 1, 1, 0], 2)!, pairwiseAuc([0.1, 0.4, 0.7, 0.55], [false, true, true, false]));
  assert.equal(binaryRocAuc(probs3, labels3, 3), null);
});

test('worst mistakes: most confidently wrong first, ties by row, limited', () => {
  const worst = worstMistakes(probs3, labels3, 3, 2);
  assert.deepEqual(
    worst.map((m) => [m.row, m.true, m.predicted]),
    [
      [2, 1, 2],
      [4, 2, 0],
    ],
  );
  close(worst[0]!.probability, 0.6);
  close(worst[0]!.true_probability, 0.3);
  assert.equal(worstMistakes(probs3, labels3, 3, 100).length, 3);
  assert.equal(worstMistakes(probs3, labels3, 3, 0).length, 0);
});

test('computeMetrics gathers all of them', () => {
  const metrics = computeMetrics(probs3, labels3, ['a', 'b', 'c']);
  assert.equal(metrics.count, 6);
  close(metrics.test_accuracy, 0.5);
  assert.equal(metrics.per_class.length, 3);
  assert.equal(metrics.roc_auc, null);
});

test('formatFloat32 is short and reads back as the same float32', () => {
  assert.equal(formatFloat32(Math.fround(0.9)), '0.9');
  assert.equal(formatFloat32(1), '1');
  assert.equal(formatFloat32(0), '0');
  const values = new Float32Array([0.123456789, 1e-9, 0.99999994, 1 / 3, 2 / 3, 2 ** -24]);
  for (const value of values) {
    const text = formatFloat32(value);
    assert.equal(Math.fround(Number(text)), value, `${value} -> ${text}`);
    assert.ok(text.length <= 16, text);
  }
});
