/**
 * Classification metrics on plain arrays: `probs` holds count x classes probabilities (row-major), `labels` the
 * true class of each row. Pure functions, no tensors: eval-model computes everything from the same arrays it
 * writes to predictions.csv, so anyone can recompute them from that file.
 */

import { argmaxRows } from '@imgpipe/kit';

/** Probabilities are clipped to [EPSILON, 1] before the log, as Keras' categorical cross-entropy does. */
export const EPSILON = 1e-7;

interface ClassMetrics {
  label: string;
  precision: number;
  recall: number;
  f1: number;
  support: number;
}

function checkShapes(probs: ArrayLike<number>, labels: ArrayLike<number>, classes: number): number {
  const count = labels.length;
  if (!Number.isInteger(classes) || classes < 1) throw new RangeError(`classes must be a positive integer, got ${classes}`);
  if (probs.length !== count * classes) throw new RangeError(`expected ${count}x${classes} probabilities, got ${probs.length}`);
  for (let i = 0; i < count; i++) {
    const label = labels[i]!;
    if (!Number.isInteger(label) || label < 0 || label >= classes) throw new RangeError(`labels[${i}] = ${label} is not one of 0..${classes - 1}`);
  }
  return count;
}

/** Share of rows whose arg max is the true label; NaN for no rows. */
export function accuracy(probs: ArrayLike<number>, labels: ArrayLike<number>, classes: number): number {
  const count = checkShapes(probs, labels, classes);
  const predicted = argmaxRows(probs, classes);
  let correct = 0;
  for (let i = 0; i < count; i++) if (predicted[i] === labels[i]) correct++;
  return count === 0 ? Number.NaN : correct / count;
}

/** Mean categorical cross-entropy, -ln p(true class) averaged over rows; NaN for no rows. */
export function crossEntropy(probs: ArrayLike<number>, labels: ArrayLike<number>, classes: number): number {
  const count = checkShapes(probs, labels, classes);
  let sum = 0;
  for (let i = 0; i < count; i++) {
    const p = Math.min(1, Math.max(EPSILON, probs[i * classes + labels[i]!]!));
    sum -= Math.log(p);
  }
  return count === 0 ? Number.NaN : sum / count;
}

/** classes x classes counts: rows are the true class, columns the predicted class, both in label order. */
export function confusionMatrix(predicted: ArrayLike<number>, labels: ArrayLike<number>, classes: number): number[][] {
  if (predicted.length !== labels.length) throw new RangeError(`${predicted.length} predictions for ${labels.length} labels`);
  const matrix = Array.from({ length: classes }, () => new Array<number>(classes).fill(0));
  for (let i = 0; i < labels.length; i++) {
    const row = matrix[labels[i]!];
    const p = predicted[i]!;
    if (!row || p < 0 || p >= classes) throw new RangeError(`row ${i}: label ${labels[i]} or prediction ${p} is not one of 0..${classes - 1}`);
    row[p]! += 1;
  }
  return matrix;
}

/**
 * Precision, recall, F1 and support per class from a confusion matrix. A ratio whose denominator is zero
 * (a class never predicted, or absent from the split) is 0, as scikit-learn's zero_division=0 does.
 */
export function perClassMetrics(matrix: readonly (readonly number[])[], labels: readonly string[]): ClassMetrics[] {
  return labels.map((label, c) => {
    const tp = matrix[c]?.[c] ?? 0;
    const support = (matrix[c] ?? []).reduce((a, b) => a + b, 0);
    const predicted = matrix.reduce((sum, row) => sum + (row[c] ?? 0), 0);
    const precision = predicted === 0 ? 0 : tp / predicted;
    const recall = support === 0 ? 0 : tp / support;
    const f1 = precision + recall === 0 ? 0 : (2 * precision * recall) / (precision + recall);
    return { label, precision, recall, f1, support };
  });
}

/**
 * Area under the ROC curve of `scores` for the positive rows, by the rank statistic (Mann-Whitney U): the chance
 * that a random positive scores above a random negative, ties counting one half (average ranks). null when one
 * of the two groups is empty, where AUC is undefined.
 */
export function rocAuc(scores: ArrayLike<number>, positive: ArrayLike<boolean>): number | null {
  const n = scores.length;
  if (positive.length !== n) throw new RangeError(`${scores.length} scores for ${positive.length} flags`);
  const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => scores[a]! - scores[b]!);
  let positives = 0;
  let rankSum = 0;
  for (let start = 0; start < n; ) {
    let end = start + 1;
    while (end < n && scores[order[end]!] === scores[order[start]!]) end++;
    const averageRank = (start + 1 + end) / 2; // ranks start+1 .. end, 1-based
    for (let k = start; k < end; k++) {
      if (positive[order[k]!]) {
        positives++;
        rankSum += averageRank;
      }
    }
    start = end;
  }
  const negatives = n - positives;
  if (positives === 0 || negatives === 0) return null;
  return (rankSum - (positives * (positives + 1)) / 2) / (positives * negatives);
}

/** Two classes: the AUC of p(class 1) for class 1 against class 0. More classes: null (not defined here). */
export function binaryRocAuc(probs: ArrayLike<number>, labels: ArrayLike<number>, classes: number): number | null {
  const count = checkShapes(probs, labels, classes);
  if (classes !== 2) return null;
  const scores = Float64Array.from({ length: count }, (_, i) => probs[i * 2 + 1]!);
  return rocAuc(
    scores,
    Array.from({ length: count }, (_, i) => labels[i] === 1),
  );
}

interface Mistake {
  /** Row in the split (0-based, the order of <split>.csv and the pixels). */
  row: number;
  true: number;
  predicted: number;
  /** Probability given to the (wrong) predicted class. */
  probability: number;
  /** Probability given to the true class. */
  true_probability: number;
}

/** The `limit` most confidently wrong rows: highest probability on a wrong class first, then by row. */
export function worstMistakes(probs: ArrayLike<number>, labels: ArrayLike<number>, classes: number, limit: number): Mistake[] {
  const count = checkShapes(probs, labels, classes);
  const predicted = argmaxRows(probs, classes);
  const wrong: Mistake[] = [];
  for (let i = 0; i < count; i++) {
    const p = predicted[i]!;
    const t = labels[i]!;
    if (p === t) continue;
    wrong.push({ row: i, true: t, predicted: p, probability: probs[i * classes + p]!, true_probability: probs[i * classes + t]! });
  }
  wrong.sort((a, b) => b.probability - a.probability || a.row - b.row);
  return wrong.slice(0, Math.max(0, limit));
}

interface TestMetrics {
  count: number;
  test_loss: number;
  test_accuracy: number;
  per_class: ClassMetrics[];
  confusion_matrix: number[][];
  roc_auc: number | null;
}

/** Every summary metric at once. */
export function computeMetrics(probs: ArrayLike<number>, labels: ArrayLike<number>, classNames: readonly string[]): TestMetrics {
  const classes = classNames.length;
  const count = checkShapes(probs, labels, classes);
  const matrix = confusionMatrix(argmaxRows(probs, classes), labels, classes);
  return {
    count,
    test_loss: crossEntropy(probs, labels, classes),
    test_accuracy: accuracy(probs, labels, classes),
    per_class: perClassMetrics(matrix, classNames),
    confusion_matrix: matrix,
    roc_auc: binaryRocAuc(probs, labels, classes),
  };
}

/**
 * The shortest decimal that reads back as the same float32: predictions.csv stays short ("0.9", not
 * "0.8999999761581421") and recomputing metrics from it gives the very same numbers.
 */
export function formatFloat32(value: number): string {
  const target = Math.fround(value);
  if (!Number.isFinite(target)) return String(target);
  for (let digits = 1; digits <= 9; digits++) {
    const text = target.toPrecision(digits);
    if (Math.fround(Number(text)) === target) return String(Number(text));
  }
  return String(target);
}
