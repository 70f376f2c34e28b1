import type { Rank, Scalar, Tensor, Tensor1D, Tensor2D, Variable } from '@tensorflow/tfjs-core';
import type { LayersModel } from '@tensorflow/tfjs-layers';
import { createRng, deriveSeed, shuffleInPlace, type Rng } from '@imgpipe/kit';
import type { Tf } from './tfjs-parts-type.js';

/**
 * The seed's classifier head on cached features: Dense(layer_size, relu) -> Dropout(dropout) -> Dense(classes,
 * softmax), Adam(lr), categorical cross-entropy. Training writes the backward pass out by hand with explicit
 * transposes: on TF.js WebAssembly, matMul with transposeA (what model.fit's Dense gradient uses) runs at about
 * 1 GFLOP/s, so `fit` takes ~6x longer per epoch. headGradients matches tf.grads (tested).
 *
 * Speed on wasm (20,000 x 2048 features, layer 512, batch 32; measured in head-epoch.bench.ts): XNNPACK packs a
 * matMul's second operand anew whenever its tensor changes, and W1 (4 MB) changes every step, so the Head keeps
 * W1 transposed (hidden x dim) and multiplies W1^T x^T, where the packed operand is the small batch: -2.5 ms a
 * step. Adam is written out (HeadAdam: 10 elementwise ops per weight instead of tf.train.adam's 17): -2.3 ms a
 * step. Together 7.7 s -> 5.7 s an epoch (2 cores shared; CPU seconds 8.0 -> 5.7).
 */
interface HeadParams {
  layer_size: number;
  dropout: number;
  lr: number;
  batch_size: number;
}

export type HeadWeights = {
  w1: Tensor2D;
  b1: Tensor1D;
  w2: Tensor2D;
  b2: Tensor1D;
};

/**
 * Features of one split in host memory (count x dim, row-major) and their labels. Batches are assembled here and
 * uploaded per step: on wasm, tf.slice/gather of a large tensor copies far more than the batch.
 */
export interface FeatureSet {
  features: Float32Array;
  labels: Int32Array;
  count: number;
  dim: number;
  classes: number;
}

interface Metrics {
  loss: number;
  accuracy: number;
}

export function createFeatureSet(features: Float32Array, labels: Int32Array, dim: number, classes: number): FeatureSet {
  const count = labels.length;
  if (features.length !== count * dim) throw new RangeError(`expected ${count}x${dim} features, got ${features.length} values`);
  for (const label of labels) if (!(label >= 0 && label < classes)) throw new RangeError(`label ${label} is outside 0..${classes - 1}`);
  return { features, labels, count, dim, classes };
}

/** Rows `rows` of a feature set as batch tensors: x (n x dim) and one-hot y (n x classes). Call inside tf.tidy. */
function batchTensors(tf: Tf, set: FeatureSet, rows: ArrayLike<number>, buffer: Float32Array): { x: Tensor2D; y: Tensor2D } {
  const n = rows.length;
  const { dim, classes } = set;
  const x = buffer.subarray(0, n * dim);
  const y = new Float32Array(n * classes);
  for (let i = 0; i < n; i++) {
    const row = rows[i]!;
    x.set(set.features.subarray(row * dim, (row + 1) * dim), i * dim);
    y[i * classes + set.labels[row]!] = 1;
  }
  return { x: tf.tensor2d(x, [n, dim]), y: tf.tensor2d(y, [n, classes]) };
}

/** The weights as a Head keeps them: W1 transposed (hidden x dim), see above. */
type HeadWeightsT = { w1t: Tensor2D; b1: Tensor1D; w2: Tensor2D; b2: Tensor1D };

/** x W1 + b1 computed as (W1^T x^T)^T + b1. */
function hiddenPre(tf: Tf, w: HeadWeightsT, x: Tensor2D): Tensor2D {
  return tf.add(tf.transpose(tf.matMul(w.w1t, tf.transpose(x))), w.b1) as Tensor2D;
}

function headLogits(tf: Tf, w: HeadWeightsT, x: Tensor2D): Tensor2D {
  return tf.add(tf.matMul(tf.relu(hiddenPre(tf, w, x)), w.w2), w.b2) as Tensor2D;
}

/**
 * Loss (mean categorical cross-entropy), the number of correct predictions, and the gradients of the loss with
 * respect to each weight, for one batch. `mask` is the inverted-dropout mask (already scaled by 1/(1-rate)).
 * Every matMul takes explicitly transposed operands, never transposeA/transposeB.
 */
export function headGradients(
  tf: Tf,
  w: HeadWeights,
  x: Tensor2D,
  y: Tensor2D,
  mask?: Tensor2D,
): { loss: Scalar; correct: Scalar; grads: HeadWeights } {
  return tf.tidy(() => {
    const { loss, correct, grads } = headGradientsT(tf, { w1t: tf.transpose(w.w1), b1: w.b1, w2: w.w2, b2: w.b2 }, x, y, mask);
    return { loss, correct, grads: { w1: tf.transpose(grads.w1t), b1: grads.b1, w2: grads.w2, b2: grads.b2 } };
  });
}

/** headGradients on the Head's layout: W1^T in, dLoss/dW1^T out. */
function headGradientsT(tf: Tf, w: HeadWeightsT, x: Tensor2D, y: Tensor2D, mask?: Tensor2D): { loss: Scalar; correct: Scalar; grads: HeadWeightsT } {
  return tf.tidy(() => {
    const batch = x.shape[0];
    const pre = hiddenPre(tf, w, x);
    const h = tf.relu(pre);
    const hd = mask ? tf.mul(h, mask) : h;
    const logits = tf.add(tf.matMul(hd, w.w2), w.b2);
    const logProbs = tf.logSoftmax(logits);
    const loss = tf.neg(tf.div(tf.sum(tf.mul(y, logProbs)), batch)) as Scalar;
    const correct = tf.sum(tf.cast(tf.equal(tf.argMax(logits, 1), tf.argMax(y, 1)), 'float32')) as Scalar;
    const dLogits = tf.div(tf.sub(tf.exp(logProbs), y), batch) as Tensor2D;
    const dw2 = tf.matMul(tf.transpose(hd), dLogits);
    const db2 = tf.sum(dLogits, 0);
    let dh = tf.matMul(dLogits, tf.transpose(w.w2));
    if (mask) dh = tf.mul(dh, mask);
    dh = tf.mul(dh, tf.step(pre));
    const dw1t = tf.matMul(tf.transpose(dh), x);
    const db1 = tf.sum(dh, 0);
    return { loss, correct, grads: { w1t: dw1t, b1: db1, w2: dw2, b2: db2 } as HeadWeightsT };
  });
}

/**
 * Adam (Kingma & Ba, as tf.train.adam: beta1 0.9, beta2 0.999, epsilon 1e-7) in 10 elementwise ops per weight
 * instead of tf.train.adam's 17. The moments are kept unscaled (m' = beta1 m' + g, v' = beta2 v' + g^2, so
 * m = (1 - beta1) m' and v = (1 - beta2) v'), and every scale and the bias correction fold into two scalars:
 * w -= s m' / (sqrt(v') + e), a = sqrt((1 - beta2) / (1 - beta2^t)), s = lr (1 - beta1) / ((1 - beta1^t) a),
 * e = eps / a: the textbook update, rearranged. Matches tf.train.adam (tested).
 */
export class HeadAdam {
  private t = 0;
  private readonly m: Variable[];
  private readonly v: Variable[];

  constructor(
    private readonly tf: Tf,
    private readonly weights: Variable[],
    private readonly lr: number,
    private readonly beta1 = 0.9,
    private readonly beta2 = 0.999,
    private readonly epsilon = 1e-7,
  ) {
    this.m = tf.tidy(() => weights.map((w) => tf.variable(tf.zerosLike(w), false)));
    this.v = tf.tidy(() => weights.map((w) => tf.variable(tf.zerosLike(w), false)));
  }

  /** One update with these gradients (same order as the weights). Call inside tf.tidy. */
  apply(grads: Tensor[]): void {
    const { tf, beta1, beta2 } = this;
    this.t += 1;
    const a = Math.sqrt((1 - beta2) / (1 - beta2 ** this.t));
    const stepSize = (this.lr * (1 - beta1)) / ((1 - beta1 ** this.t) * a);
    const eps = this.epsilon / a;
    this.weights.forEach((w, i) => {
      const g = grads[i]!;
      const m = tf.add(tf.mul(this.m[i]!, beta1), g);
      const v = tf.add(tf.mul(this.v[i]!, beta2), tf.square(g));
      this.m[i]!.assign(m);
      this.v[i]!.assign(v);
      w.assign(tf.sub(w, tf.div(tf.mul(m, stepSize), tf.add(tf.sqrt(v), eps))));
    });
  }

  dispose(): void {
    for (const t of [...this.m, ...this.v]) t.dispose();
  }
}

let headCounter = 0;

/** Glorot-uniform values from a seeded generator (Keras' default Dense initialiser). */
function glorotUniform(rng: Rng, fanIn: number, fanOut: number): Float32Array {
  const limit = Math.sqrt(6 / (fanIn + fanOut));
  const values = new Float32Array(fanIn * fanOut);
  for (let i = 0; i < values.length; i++) values[i] = (rng() * 2 - 1) * limit;
  return values;
}

interface HeadOptions extends HeadParams {
  inputDim: number;
  classes: number;
  /** Fixes initialisation, shuffling and dropout masks. */
  seed: number;
}

/** One trainable head: its variables, its Adam optimiser and seeded streams. Dispose when done. */
export class Head {
  /** w1t is W1 transposed (layer_size x inputDim): see the top of this file. */
  readonly vars: { w1t: Variable<Rank.R2>; b1: Variable<Rank.R1>; w2: Variable<Rank.R2>; b2: Variable<Rank.R1> };
  private readonly optimizer: HeadAdam;
  private readonly shuffleRng: Rng;
  private readonly dropoutRng: Rng;

  constructor(
    private readonly tf: Tf,
    readonly options: HeadOptions,
  ) {
    const { inputDim, classes, layer_size: hidden, seed } = options;
    const initRng = createRng(deriveSeed(seed, 'init'));
    this.shuffleRng = createRng(deriveSeed(seed, 'shuffle'));
    this.dropoutRng = createRng(deriveSeed(seed, 'dropout'));
    const id = `imgpipe_head_${++headCounter}`;
    this.vars = tf.tidy(() => ({
      w1t: tf.variable(tf.transpose(tf.tensor2d(glorotUniform(initRng, inputDim, hidden), [inputDim, hidden])), true, `${id}_w1t`),
      b1: tf.variable(tf.zeros([hidden]) as Tensor1D, true, `${id}_b1`),
      w2: tf.variable(tf.tensor2d(glorotUniform(initRng, hidden, classes), [hidden, classes]), true, `${id}_w2`),
      b2: tf.variable(tf.zeros([classes]) as Tensor1D, true, `${id}_b2`),
    }));
    const { w1t, b1, w2, b2 } = this.vars;
    this.optimizer = new HeadAdam(tf, [w1t, b1, w2, b2], options.lr);
  }

  /** One pass over `set` in seeded shuffled batches; yields to the event loop between batches. */
  async trainEpoch(set: FeatureSet, onBatch?: (done: number, total: number) => void): Promise<Metrics> {
    const { tf } = this;
    const { batch_size: batchSize, dropout } = this.options;
    const order = shuffleInPlace(
      Int32Array.from({ length: set.count }, (_, i) => i),
      this.shuffleRng,
    );
    const batches = Math.ceil(set.count / batchSize);
    const sums: Tensor[] = [];
    const buffer = new Float32Array(batchSize * set.dim);
    try {
      for (let b = 0; b < batches; b++) {
        const start = b * batchSize;
        const end = Math.min(set.count, start + batchSize);
        const dropoutSeed = Math.floor(this.dropoutRng() * 2 ** 31);
        const summary = tf.tidy(() => {
          const { x, y } = batchTensors(tf, set, order.subarray(start, end), buffer);
          const mask =
            dropout > 0
              ? (tf.div(
                  tf.cast(
                    tf.greaterEqual(tf.randomUniform([end - start, this.options.layer_size], 0, 1, 'float32', dropoutSeed), dropout),
                    'float32',
                  ),
                  1 - dropout,
                ) as Tensor2D)
              : undefined;
          const { loss, correct, grads } = headGradientsT(tf, this.vars, x, y, mask);
          this.optimizer.apply([grads.w1t, grads.b1, grads.w2, grads.b2]);
          return tf.stack([tf.mul(loss, end - start), correct]);
        });
        sums.push(summary);
        if (b % 16 === 15 || b === batches - 1) {
          onBatch?.(b + 1, batches);
          await new Promise((resolve) => setImmediate(resolve));
        }
      }
      const total = tf.tidy(() => tf.sum(tf.stack(sums), 0));
      const [lossSum, correct] = await total.data();
      total.dispose();
      return { loss: lossSum! / set.count, accuracy: correct! / set.count };
    } finally {
      for (const t of sums) t.dispose();
    }
  }

  /** Loss and accuracy on a split, without dropout. */
  async evaluate(set: FeatureSet, batchSize = 1024): Promise<Metrics> {
    const { tf } = this;
    let lossSum = 0;
    let correct = 0;
    const buffer = new Float32Array(Math.min(batchSize, set.count) * set.dim);
    for (let start = 0; start < set.count; start += batchSize) {
      const size = Math.min(batchSize, set.count - start);
      const rows = Int32Array.from({ length: size }, (_, i) => start + i);
      const result = tf.tidy(() => {
        const { x, y } = batchTensors(tf, set, rows, buffer);
        const logits = headLogits(tf, this.vars, x);
        const loss = tf.neg(tf.sum(tf.mul(y, tf.logSoftmax(logits))));
        const hits = tf.sum(tf.cast(tf.equal(tf.argMax(logits, 1), tf.argMax(y, 1)), 'float32'));
        return tf.stack([loss, hits]);
      });
      const [l, c] = await result.data();
      result.dispose();
      lossSum += l!;
      correct += c!;
    }
    return { loss: lossSum / set.count, accuracy: correct / set.count };
  }

  /** Softmax probabilities, no dropout (what the saved layers model computes). */
  predict(x: Tensor2D): Tensor2D {
    return this.tf.tidy(() => this.tf.softmax(headLogits(this.tf, this.vars, x)) as Tensor2D);
  }

  /** Copies of the current weights as plain arrays (to keep the best epoch's weights). */
  async snapshot(): Promise<HeadSnapshot> {
    const w1 = this.tf.transpose(this.vars.w1t);
    try {
      const [w1Data, b1, w2, b2] = await Promise.all([w1.data(), this.vars.b1.data(), this.vars.w2.data(), this.vars.b2.data()]);
      return { w1: w1Data as Float32Array, b1: b1 as Float32Array, w2: w2 as Float32Array, b2: b2 as Float32Array };
    } finally {
      w1.dispose();
    }
  }

  restore(snapshot: HeadSnapshot): void {
    const { tf } = this;
    tf.tidy(() => {
      const [hidden, dim] = this.vars.w1t.shape;
      this.vars.w1t.assign(tf.transpose(tf.tensor2d(snapshot.w1, [dim, hidden])));
      this.vars.b1.assign(tf.tensor1d(snapshot.b1));
      this.vars.w2.assign(tf.tensor2d(snapshot.w2, this.vars.w2.shape));
      this.vars.b2.assign(tf.tensor1d(snapshot.b2));
    });
  }

  /** The head as a standard TF.js layers model (Dense -> Dropout -> Dense softmax) with these weights. */
  toLayersModel(): LayersModel {
    const w1 = this.tf.transpose(this.vars.w1t);
    try {
      return buildLayersHead(this.tf, this.options, { w1, b1: this.vars.b1, w2: this.vars.w2, b2: this.vars.b2 });
    } finally {
      w1.dispose();
    }
  }

  dispose(): void {
    this.optimizer.dispose();
    for (const v of Object.values(this.vars)) v.dispose();
  }
}

/** Plain copies of a Head's weights (w1 as dim x layer_size, as in HeadWeights). */
export interface HeadSnapshot {
  w1: Float32Array;
  b1: Float32Array;
  w2: Float32Array;
  b2: Float32Array;
}

/** A layers model of the head's architecture; weights copied in from `weights`. */
export function buildLayersHead(
  tf: Tf,
  options: Pick<HeadOptions, 'inputDim' | 'classes' | 'layer_size' | 'dropout'>,
  weights: HeadWeights,
): LayersModel {
  const model = tf.sequential({
    name: 'imgpipe_head',
    layers: [
      tf.layers.dense({ inputShape: [options.inputDim], units: options.layer_size, activation: 'relu', name: 'hidden' }),
      tf.layers.dropout({ rate: options.dropout, name: 'dropout' }),
      tf.layers.dense({ units: options.classes, activation: 'softmax', name: 'probs' }),
    ],
  });
  model.setWeights([weights.w1, weights.b1, weights.w2, weights.b2]);
  return model;
}
