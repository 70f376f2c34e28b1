import { createFeatureSet, Head, type Tf } from '@imgpipe/engines';
import { createProgress, createRng, deriveSeed, FailureError, shuffleInPlace, type Logger, type ProgressEvent } from '@imgpipe/kit';
import type { HeadParamsRecord } from './run-inputs.js';

/**
 * Fold of each image: per class, a seeded shuffle dealt round-robin, so every fold holds about 1/K of each class
 * (a class smaller than K leaves some folds without it).
 */
export function assignFolds(labels: Int32Array, classes: number, folds: number, seed: number): Int32Array {
  const fold = new Int32Array(labels.length);
  const rng = createRng(deriveSeed(seed, 'folds'));
  let next = 0;
  for (let c = 0; c < classes; c++) {
    const members = Int32Array.from(labels.keys()).filter((i) => labels[i] === c);
    shuffleInPlace(members, rng);
    // Continue the round-robin across classes so small classes do not all start in fold 0.
    for (const i of members) fold[i] = next++ % folds;
  }
  return fold;
}

interface OutOfSampleOptions {
  tf: Tf;
  features: Float32Array;
  labels: Int32Array;
  dim: number;
  classes: number;
  folds: number;
  params: HeadParamsRecord;
  seed: number;
  log: Logger;
  onProgress?: (event: ProgressEvent) => void;
}

function rowsOf(source: Float32Array, rows: readonly number[], dim: number): Float32Array {
  const out = new Float32Array(rows.length * dim);
  rows.forEach((row, i) => {
    out.set(source.subarray(row * dim, (row + 1) * dim), i * dim);
  });
  return out;
}

/**
 * K heads, each trained on every image outside its fold (the run's best hyper-parameters, for its epochs) and
 * predicting the images of its fold: every image gets softmax probabilities from a head that never saw it.
 * Returns count x classes probabilities, row-major.
 */
export async function outOfSampleProbabilities(options: OutOfSampleOptions): Promise<Float32Array> {
  const { tf, features, labels, dim, classes, folds, params, seed, log } = options;
  const count = labels.length;
  if (folds < 2) throw new FailureError(`--folds must be at least 2, got ${folds}`);
  const fold = assignFolds(labels, classes, folds, seed);
  const probs = new Float32Array(count * classes);
  const progress = createProgress({ label: 'heads', total: folds * params.epochs, unit: 'epochs', quiet: log.quiet, onEvent: options.onProgress });
  let epochsDone = 0;
  for (let k = 0; k < folds; k++) {
    const inside: number[] = [];
    const outside: number[] = [];
    for (let i = 0; i < count; i++) (fold[i] === k ? inside : outside).push(i);
    if (inside.length === 0) {
      epochsDone += params.epochs;
      continue;
    }
    const started = performance.now();
    const trainSet = createFeatureSet(
      rowsOf(features, outside, dim),
      Int32Array.from(outside, (i) => labels[i]!),
      dim,
      classes,
    );
    const head = new Head(tf, {
      inputDim: dim,
      classes,
      layer_size: params.layer_size,
      dropout: params.dropout,
      lr: params.lr,
      batch_size: params.batch_size,
      seed: deriveSeed(seed, 'fold', k),
    });
    try {
      let loss = Number.NaN;
      for (let epoch = 0; epoch < params.epochs; epoch++) {
        loss = (await head.trainEpoch(trainSet)).loss;
        if (!Number.isFinite(loss))
          throw new FailureError(`fold ${k + 1}/${folds}: training loss is ${loss} in epoch ${epoch + 1} (lr ${params.lr})`);
        progress.update(++epochsDone, `fold ${k + 1}/${folds}`);
      }
      const held = rowsOf(features, inside, dim);
      const batch = 1024;
      for (let start = 0; start < inside.length; start += batch) {
        const n = Math.min(batch, inside.length - start);
        const out = tf.tidy(() => head.predict(tf.tensor2d(held.subarray(start * dim, (start + n) * dim), [n, dim])));
        const values = (await out.data()) as Float32Array;
        out.dispose();
        for (let r = 0; r < n; r++) probs.set(values.subarray(r * classes, (r + 1) * classes), inside[start + r]! * classes);
      }
      log.debug(
        `fold ${k + 1}/${folds}: head trained on ${outside.length} images (loss ${loss.toFixed(4)}), predicted ${inside.length} in ${((performance.now() - started) / 1000).toFixed(1)}s`,
      );
    } finally {
      head.dispose();
    }
  }
  progress.finish();
  return probs;
}
