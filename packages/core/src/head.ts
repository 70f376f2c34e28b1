import type { LayersModel, Rank, Scalar, Tensor, Tensor1D, Tensor2D, Variable } from '@tensorflow/tfjs';
import { createRng, deriveSeed, shuffleInPlace, type Rng } from './random.js';
import type { Tf } from './tf.js';

/**
 * The seed's classifier head on cached features: Dense(layer_size, relu) -> Dropout(dropout) -> Dense(classes,
 * softmax), Adam(lr), categorical cross-entropy. Training writes the backward pass out by hand with explicit
 * transposes: on TF.js WebAssembly, matMul with transposeA (what model.fit's Dense gradient uses) runs at about
 * 1 GFLOP/s, so `fit` takes ~6x longer per epoch. headGradients matches tf.grads (tested).
 */
export interface HeadParams {
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

export interface Metrics {
  loss: number;
  accuracy: number;
}

export class TrialFailed extends Error {}

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

/** Softmax probabilities of the head without dropout. */
export function headForward(tf: Tf, w: HeadWeights, x: Tensor2D): Tensor2D {
  return tf.tidy(() => tf.softmax(headLogits(tf, w, x)) as Tensor2D);
}

function headLogits(tf: Tf, w: HeadWeights, x: Tensor2D, mask?: Tensor2D): Tensor2D {
  const h = tf.relu(tf.add(tf.matMul(x, w.w1), w.b1)) as Tensor2D;
  const hd = mask ? tf.mul(h, mask) : h;
  return tf.add(tf.matMul(hd, w.w2), w.b2) as Tensor2D;
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
    const batch = x.shape[0];
    const pre = tf.add(tf.matMul(x, w.w1), w.b1);
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
    const dw1 = tf.matMul(tf.transpose(x), dh);
    const db1 = tf.sum(dh, 0);
    return { loss, correct, grads: { w1: dw1, b1: db1, w2: dw2, b2: db2 } as HeadWeights };
  });
}

let headCounter = 0;

/** Glorot-uniform values from a seeded generator (Keras' default Dense initialiser). */
function glorotUniform(rng: Rng, fanIn: number, fanOut: number): Float32Array {
  const limit = Math.sqrt(6 / (fanIn + fanOut));
  const values = new Float32Array(fanIn * fanOut);
  for (let i = 0; i < values.length; i++) values[i] = (rng() * 2 - 1) * limit;
  return values;
}

export interface HeadOptions extends HeadParams {
  inputDim: number;
  classes: number;
  /** Fixes initialisation, shuffling and dropout masks. */
  seed: number;
}

/** One trainable head: its variables, its Adam optimiser and seeded streams. Dispose when done. */
export class Head {
  readonly vars: { w1: Variable<Rank.R2>; b1: Variable<Rank.R1>; w2: Variable<Rank.R2>; b2: Variable<Rank.R1> };
  private readonly optimizer;
  private readonly shuffleRng: Rng;
  private readonly dropoutRng: Rng;
  private readonly names: Record<keyof HeadWeights, string>;

  constructor(
    private readonly tf: Tf,
    readonly options: HeadOptions,
  ) {
    const { inputDim, classes, layer_size: hidden, seed } = options;
    const initRng = createRng(deriveSeed(seed, 'init'));
    this.shuffleRng = createRng(deriveSeed(seed, 'shuffle'));
    this.dropoutRng = createRng(deriveSeed(seed, 'dropout'));
    const id = `imgpipe_head_${++headCounter}`;
    this.names = { w1: `${id}_w1`, b1: `${id}_b1`, w2: `${id}_w2`, b2: `${id}_b2` };
    this.vars = tf.tidy(() => ({
      w1: tf.variable(tf.tensor2d(glorotUniform(initRng, inputDim, hidden), [inputDim, hidden]), true, this.names.w1),
      b1: tf.variable(tf.zeros([hidden]) as Tensor1D, true, this.names.b1),
      w2: tf.variable(tf.tensor2d(glorotUniform(initRng, hidden, classes), [hidden, classes]), true, this.names.w2),
      b2: tf.variable(tf.zeros([classes]) as Tensor1D, true, this.names.b2),
    }));
    this.optimizer = tf.train.adam(options.lr);
  }

  /** One pass over `set` in seeded shuffled batches; yields to the event loop between batches. */
  async trainEpoch(set: FeatureSet, onBatch?: (done: number, total: number) => void): Promise<Metrics> {
    const { tf } = this;
    const { batch_size: batchSize, dropout } = this.options;
    const order = shuffleInPlace(Int32Array.from({ length: set.count }, (_, i) => i), this.shuffleRng);
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
              ? (tf.div(tf.cast(tf.greaterEqual(tf.randomUniform([end - start, this.options.layer_size], 0, 1, 'float32', dropoutSeed), dropout), 'float32'), 1 - dropout) as Tensor2D)
              : undefined;
          const { loss, correct, grads } = headGradients(tf, this.vars, x, y, mask);
          this.optimizer.applyGradients([
            { name: this.names.w1, tensor: grads.w1 },
            { name: this.names.b1, tensor: grads.b1 },
            { name: this.names.w2, tensor: grads.w2 },
            { name: this.names.b2, tensor: grads.b2 },
          ]);
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
    return headForward(this.tf, this.vars, x);
  }

  /** Copies of the current weights as plain arrays (to keep the best epoch's weights). */
  async snapshot(): Promise<HeadSnapshot> {
    const [w1, b1, w2, b2] = await Promise.all([this.vars.w1.data(), this.vars.b1.data(), this.vars.w2.data(), this.vars.b2.data()]);
    return { w1: w1 as Float32Array, b1: b1 as Float32Array, w2: w2 as Float32Array, b2: b2 as Float32Array };
  }

  restore(snapshot: HeadSnapshot): void {
    const { tf } = this;
    tf.tidy(() => {
      this.vars.w1.assign(tf.tensor2d(snapshot.w1, this.vars.w1.shape));
      this.vars.b1.assign(tf.tensor1d(snapshot.b1));
      this.vars.w2.assign(tf.tensor2d(snapshot.w2, this.vars.w2.shape));
      this.vars.b2.assign(tf.tensor1d(snapshot.b2));
    });
  }

  /** The head as a standard TF.js layers model (Dense -> Dropout -> Dense softmax) with these weights. */
  toLayersModel(): LayersModel {
    return buildLayersHead(this.tf, this.options, this.vars);
  }

  dispose(): void {
    this.optimizer.dispose();
    for (const v of Object.values(this.vars)) v.dispose();
  }
}

export interface HeadSnapshot {
  w1: Float32Array;
  b1: Float32Array;
  w2: Float32Array;
  b2: Float32Array;
}

/** A layers model of the head's architecture; weights copied in from `weights`. */
export function buildLayersHead(tf: Tf, options: Pick<HeadOptions, 'inputDim' | 'classes' | 'layer_size' | 'dropout'>, weights: HeadWeights): LayersModel {
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
