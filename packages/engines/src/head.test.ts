import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Tensor1D, Tensor2D } from '@imgpipe/engines/tfjs-parts';
import { makeTempDir } from '@imgpipe/test-utils';
import { loadTf, createFeatureSet, Head, HeadAdam, headGradients, type HeadWeights, fileLoadHandler } from '@imgpipe/engines';
import { createRng } from '@imgpipe/kit';

const { tf } = await loadTf('wasm');

function randomArray(n: number, rng: () => number, scale = 1): Float32Array {
  return Float32Array.from({ length: n }, () => (rng() * 2 - 1) * scale);
}

/** Two separable Gaussian-ish clusters in `dim` dimensions. */
function clusters(count: number, dim: number, seed: number): { features: Float32Array; labels: Int32Array } {
  const rng = createRng(seed);
  const labels = Int32Array.from({ length: count }, (_, i) => i % 2);
  const features = new Float32Array(count * dim);
  for (let i = 0; i < count; i++) for (let d = 0; d < dim; d++) features[i * dim + d] = rng() - 0.5 + (d < 4 ? (labels[i]! ? 1 : -1) : 0);
  return { features, labels };
}

test('hand-written head gradients match tf.grads, with and without a dropout mask', () => {
  const rng = createRng(7);
  const [batch, dim, hidden, classes] = [6, 10, 8, 3];
  tf.tidy(() => {
    const w: HeadWeights = {
      w1: tf.tensor2d(randomArray(dim * hidden, rng), [dim, hidden]),
      b1: tf.tensor1d(randomArray(hidden, rng, 0.1)),
      w2: tf.tensor2d(randomArray(hidden * classes, rng), [hidden, classes]),
      b2: tf.tensor1d(randomArray(classes, rng, 0.1)),
    };
    const x = tf.tensor2d(randomArray(batch * dim, rng), [batch, dim]);
    const y = tf.cast(tf.oneHot(tf.tensor1d([0, 1, 2, 1, 0, 2], 'int32'), classes), 'float32') as Tensor2D;
    const mask = tf.tensor2d(
      Float32Array.from({ length: batch * hidden }, () => (rng() < 0.5 ? 0 : 2)),
      [batch, hidden],
    );
    for (const m of [undefined, mask]) {
      const lossFn = (w1: Tensor2D, b1: Tensor1D, w2: Tensor2D, b2: Tensor1D) => {
        let h = tf.relu(tf.add(tf.matMul(x, w1), b1));
        if (m) h = tf.mul(h, m);
        const logits = tf.add(tf.matMul(h, w2), b2);
        return tf.losses.softmaxCrossEntropy(y, logits);
      };
      const expected = tf.grads((a, b, c, d) => lossFn(a as Tensor2D, b as Tensor1D, c as Tensor2D, d as Tensor1D))([w.w1, w.b1, w.w2, w.b2]);
      const ours = headGradients(tf, w, x, y, m);
      assert.ok(Math.abs(ours.loss.dataSync()[0]! - lossFn(w.w1, w.b1, w.w2, w.b2).dataSync()[0]!) < 1e-5, 'loss');
      const names = ['w1', 'b1', 'w2', 'b2'] as const;
      names.forEach((name, i) => {
        const diff = tf.max(tf.abs(tf.sub(ours.grads[name], expected[i]!))).dataSync()[0]!;
        const size = tf.max(tf.abs(expected[i]!)).dataSync()[0]!;
        assert.ok(size > 0, `${name}: gradient is all zero, the check would be vacuous`);
        assert.ok(diff < 1e-5, `${name}: max difference ${diff}`);
      });
    }
  });
});

test('a head learns separable clusters, is seeded, leaks no tensors, and saves as an equivalent layers model', async () => {
  await using dir = await makeTempDir();
  const dim = 16;
  const train = clusters(200, dim, 1);
  const val = clusters(60, dim, 2);
  const trainSet = createFeatureSet(train.features, train.labels, dim, 2);
  const valSet = createFeatureSet(val.features, val.labels, dim, 2);
  const options = { inputDim: dim, classes: 2, layer_size: 12, dropout: 0.5, lr: 0.01, batch_size: 16, seed: 3 };
  const runTrial = async () => {
    const head = new Head(tf, options);
    const epochs = [];
    for (let e = 0; e < 3; e++) epochs.push({ train: await head.trainEpoch(trainSet), val: await head.evaluate(valSet) });
    return { head, epochs };
  };
  const before = tf.memory().numTensors;
  const first = await runTrial();
  assert.ok(first.epochs[2]!.val.accuracy > 0.9, `val accuracy ${first.epochs[2]!.val.accuracy}`);
  assert.ok(first.epochs[2]!.train.loss < first.epochs[0]!.train.loss, 'train loss goes down');

  const model = first.head.toLayersModel();
  await model.save((await import('@imgpipe/engines')).fileSaveHandler(dir.path));
  model.dispose();
  const loaded = await tf.loadLayersModel(fileLoadHandler(tf.io, `${dir.path}/model.json`));
  const [ours, theirs] = tf.tidy(() => {
    const x = tf.tensor2d(val.features, [60, dim]);
    return [first.head.predict(x).dataSync(), (loaded.predict(x) as Tensor2D).dataSync()];
  });
  loaded.dispose();
  assert.equal(ours!.length, 120);
  for (let i = 0; i < ours!.length; i++) assert.ok(Math.abs(ours![i]! - theirs![i]!) < 1e-5, `prob ${i}: ${ours![i]} vs ${theirs![i]}`);
  first.head.dispose();
  assert.equal(tf.memory().numTensors, before, 'tensors after the first trial');

  const second = await runTrial();
  second.head.dispose();
  assert.deepEqual(second.epochs, first.epochs, 'same seed, same metrics');
  assert.equal(tf.memory().numTensors, before, 'tensors after the second trial');
});

test('HeadAdam (bias correction folded into scalars) matches tf.train.adam step for step', () => {
  const rng = createRng(3);
  const start = randomArray(24, rng);
  const ours = tf.variable(tf.tensor2d(start, [4, 6]));
  const theirs = tf.variable(tf.tensor2d(start, [4, 6]));
  const before = tf.memory().numTensors;
  const adam = new HeadAdam(tf, [ours], 0.01);
  const reference = tf.train.adam(0.01);
  for (let step = 0; step < 6; step++) {
    const g = tf.tensor2d(randomArray(24, rng, step === 3 ? 1e-4 : 1), [4, 6]);
    tf.tidy(() => adam.apply([g]));
    reference.applyGradients([{ name: theirs.name, tensor: g }]);
    g.dispose();
  }
  const moved = tf.tidy(() => tf.max(tf.abs(tf.sub(ours, tf.tensor2d(start, [4, 6])))).dataSync()[0]!);
  assert.ok(moved > 0.03, `the weights moved (${moved}), so the comparison is not vacuous`);
  const diff = tf.tidy(() => tf.max(tf.abs(tf.sub(ours, theirs))).dataSync()[0]!);
  assert.ok(diff < 1e-6, `max difference ${diff}`);
  adam.dispose();
  reference.dispose();
  assert.equal(tf.memory().numTensors, before, 'both optimisers free their moments');
  tf.dispose([ours, theirs]);
});
