import type { Tf } from '@imgpipe/engines';
import { createProgress, type ProgressEvent } from '@imgpipe/kit';

/** Per image and class: mean cosine distance to its k nearest neighbours of that class; and its closest image in another split. */
export interface Neighbours {
  /** count x classes, row-major: mean (1 - cosine) to the k nearest images labelled c (itself excluded); NaN if none. */
  classDistance: Float64Array;
  /** Per image: the most similar image of another split (-1 when there is none) and their cosine. */
  nearestOther: Int32Array;
  nearestOtherCosine: Float32Array;
}

interface NeighbourOptions {
  tf: Tf;
  features: Float32Array;
  dim: number;
  labels: Int32Array;
  classes: number;
  /** Split of each image (any small integers): duplicates are looked for across different values. */
  group: Int32Array;
  k: number;
  /** Rows of the similarity matrix computed at once. */
  chunk?: number;
  quiet?: boolean;
  onProgress?: (event: ProgressEvent) => void;
}

/**
 * Rows centred on the mean row, then scaled to unit length (a zero row stays zero). Pooled ReLU features all share
 * a large positive mean, which puts every cosine near 1; centred, the cosine tells images apart.
 */
function centredUnitRows(features: Float32Array, dim: number): Float32Array {
  const count = features.length / dim;
  const mean = new Float64Array(dim);
  for (let r = 0; r < count; r++) for (let c = 0; c < dim; c++) mean[c]! += features[r * dim + c]!;
  for (let c = 0; c < dim; c++) mean[c]! /= Math.max(1, count);
  const out = new Float32Array(features.length);
  for (let r = 0; r < count; r++) {
    let sum = 0;
    for (let c = 0; c < dim; c++) sum += (features[r * dim + c]! - mean[c]!) ** 2;
    const scale = sum > 0 ? 1 / Math.sqrt(sum) : 0;
    for (let c = 0; c < dim; c++) out[r * dim + c] = (features[r * dim + c]! - mean[c]!) * scale;
  }
  return out;
}

/** Insert `value` into `top` (descending, fixed length, -Infinity for empty slots). */
function insertTop(top: Float64Array, offset: number, k: number, value: number): void {
  if (value <= top[offset + k - 1]!) return;
  let at = offset + k - 1;
  while (at > offset && top[at - 1]! < value) {
    top[at] = top[at - 1]!;
    at--;
  }
  top[at] = value;
}

/**
 * The cosine similarity matrix (of centred features) in row chunks (unit rows times the transposed set, on the TF.js device), read once:
 * per row, the k largest similarities to each class and the largest to another split.
 */
export async function findNeighbours(options: NeighbourOptions): Promise<Neighbours> {
  const { tf, dim, labels, classes, group, k } = options;
  const count = labels.length;
  const unit = centredUnitRows(options.features, dim);
  const chunk = options.chunk ?? Math.max(1, Math.min(512, Math.floor(32e6 / Math.max(1, count))));
  const classDistance = new Float64Array(count * classes).fill(Number.NaN);
  const nearestOther = new Int32Array(count).fill(-1);
  const nearestOtherCosine = new Float32Array(count).fill(Number.NaN);
  const top = new Float64Array(classes * k);
  const progress = createProgress({ label: 'neighbours', total: count, unit: 'images', quiet: options.quiet ?? false, onEvent: options.onProgress });
  const all = tf.tensor2d(unit, [count, dim]);
  const allT = tf.transpose(all);
  try {
    for (let start = 0; start < count; start += chunk) {
      const n = Math.min(chunk, count - start);
      const product = tf.tidy(() => tf.matMul(tf.tensor2d(unit.subarray(start * dim, (start + n) * dim), [n, dim]), allT));
      const sims = (await product.data()) as Float32Array;
      product.dispose();
      for (let r = 0; r < n; r++) {
        const i = start + r;
        top.fill(Number.NEGATIVE_INFINITY);
        let bestOther = -1;
        let bestOtherSim = Number.NEGATIVE_INFINITY;
        const row = r * count;
        for (let j = 0; j < count; j++) {
          if (j === i) continue;
          const s = sims[row + j]!;
          insertTop(top, labels[j]! * k, k, s);
          if (group[j] !== group[i] && s > bestOtherSim) {
            bestOtherSim = s;
            bestOther = j;
          }
        }
        for (let c = 0; c < classes; c++) {
          let sum = 0;
          let m = 0;
          for (let t = 0; t < k; t++) {
            const s = top[c * k + t]!;
            if (s === Number.NEGATIVE_INFINITY) break;
            sum += 1 - s;
            m++;
          }
          if (m > 0) classDistance[i * classes + c] = Math.max(0, sum / m);
        }
        nearestOther[i] = bestOther;
        if (bestOther >= 0) nearestOtherCosine[i] = bestOtherSim;
      }
      progress.update(start + n);
      await new Promise((resolve) => setImmediate(resolve));
    }
    progress.finish();
  } finally {
    all.dispose();
    allT.dispose();
  }
  return { classDistance, nearestOther, nearestOtherCosine };
}

/**
 * How far each image is from each class, as a robust z-score against that class's own members: log distances,
 * centred on the members' median, scaled by 1.4826 x their median absolute deviation.
 */
export function classDistanceZ(neighbours: Neighbours, labels: Int32Array, classes: number): Float64Array {
  const count = labels.length;
  const z = new Float64Array(count * classes).fill(Number.NaN);
  const logOf = (d: number) => Math.log(d + 1e-6);
  for (let c = 0; c < classes; c++) {
    const own: number[] = [];
    for (let i = 0; i < count; i++)
      if (labels[i] === c && Number.isFinite(neighbours.classDistance[i * classes + c]!)) own.push(logOf(neighbours.classDistance[i * classes + c]!));
    if (own.length < 3) continue;
    const median = medianOf(own);
    const mad = medianOf(own.map((v) => Math.abs(v - median)));
    const scale = Math.max(1.4826 * mad, 1e-3);
    for (let i = 0; i < count; i++) {
      const d = neighbours.classDistance[i * classes + c]!;
      if (Number.isFinite(d)) z[i * classes + c] = (logOf(d) - median) / scale;
    }
  }
  return z;
}

export function medianOf(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}
