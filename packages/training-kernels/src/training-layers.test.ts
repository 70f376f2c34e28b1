import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Tensor } from '@tensorflow/tfjs-core';
import { loadTf } from '@imgpipe/engines';
import { registerTrainingKernels } from './register-training-kernels.js';
import { freezeBatchNormStatistics, fuseTrainingLayers } from './training-layers.js';
import type { Tf } from '@imgpipe/engines';

const { tf } = await loadTf('wasm');
registerTrainingKernels(tf);
type LayersModel = ReturnType<Tf['model']>;

/**
 * MobileNet-like: conv -> BN -> ReLU(6) -> depthwise -> BN -> Activation(relu6) -> 1x1 conv to 6 channels (not a
 * multiple of 4: the JavaScript path) -> BN -> ReLU(6) -> pool -> dense. Weights from a seed; gamma up to 5, so
 * that some activations pass 6.
 */
function buildModel(seed: number): LayersModel {
  const input = tf.input({ shape: [9, 9, 3] });
  let t = tf.layers
    .conv2d({
      filters: 8,
      kernelSize: 3,
      strides: 2,
      padding: 'same',
      useBias: false,
      kernelInitializer: tf.initializers.glorotNormal({ seed }),
      name: 'conv1',
    })
    .apply(input);
  t = tf.layers.batchNormalization({ name: 'bn1' }).apply(t);
  t = tf.layers.reLU({ maxValue: 6, name: 'relu1' }).apply(t);
  t = tf.layers
    .depthwiseConv2d({
      kernelSize: 3,
      padding: 'same',
      useBias: false,
      depthwiseInitializer: tf.initializers.glorotNormal({ seed: seed + 1 }),
      name: 'dw',
    })
    .apply(t);
  t = tf.layers.batchNormalization({ name: 'bn2' }).apply(t);
  t = tf.layers.activation({ activation: 'relu6', name: 'relu2' }).apply(t);
  t = tf.layers
    .conv2d({
      filters: 6,
      kernelSize: 1,
      useBias: true,
      kernelInitializer: tf.initializers.glorotNormal({ seed: seed + 2 }),
      biasInitializer: 'ones',
      name: 'pw',
    })
    .apply(t);
  t = tf.layers.batchNormalization({ name: 'bn3', momentum: 0.9 }).apply(t);
  t = tf.layers.reLU({ maxValue: 6, name: 'relu3' }).apply(t);
  t = tf.layers.globalAveragePooling2d({}).apply(t);
  t = tf.layers
    .dense({ units: 2, activation: 'softmax', kernelInitializer: tf.initializers.glorotNormal({ seed: seed + 3 }), name: 'head' })
    .apply(t);
  const model = tf.model({ inputs: input, outputs: t as never });
  for (const layer of model.layers) {
    if (layer.getClassName() !== 'BatchNormalization') continue;
    const [gamma, , mean, variance] = layer.getWeights();
    const n = gamma!.shape[0]!;
    const values = [tf.linspace(1.5, 5, n), tf.linspace(-0.5, 2, n)];
    layer.setWeights([...values, mean!, variance!]);
    tf.dispose(values);
  }
  return model;
}

/** Only BatchNormalization and the head train (--fine-tune bn). */
function freezeAllButBatchNorm(model: LayersModel): void {
  for (const layer of model.layers) if (!['BatchNormalization', 'Dense'].includes(layer.getClassName())) layer.trainable = false;
}

function lossOf(model: LayersModel, x: Tensor, y: Tensor): Tensor {
  const p = model.apply(x, { training: true }) as Tensor;
  return tf.mean(tf.neg(tf.sum(tf.mul(y, tf.log(tf.add(p, 1e-7))), -1)));
}

function step(model: LayersModel, x: Tensor, y: Tensor): { loss: number; grads: Map<string, Float32Array>; moving: Map<string, Float32Array> } {
  const variables = model.trainableWeights.map((w) => w.read() as never);
  const { value, grads } = tf.variableGrads(() => lossOf(model, x, y) as never, variables);
  const out = new Map<string, Float32Array>();
  for (const [name, g] of Object.entries(grads)) out.set(name.replace(/_\d+$/, ''), g.dataSync() as Float32Array);
  const moving = new Map<string, Float32Array>();
  for (const w of model.weights) if (/moving/.test(w.name)) moving.set(w.name.replace(/_\d+$/, ''), w.read().dataSync() as Float32Array);
  const loss = value.dataSync()[0]!;
  tf.dispose([value, ...Object.values(grads)]);
  return { loss, grads: out, moving };
}

function assertClose(actual: Float32Array, expected: Float32Array, what: string): void {
  assert.equal(actual.length, expected.length, what);
  const scale = Math.max(1e-3, ...Array.from(expected, Math.abs));
  for (let i = 0; i < expected.length; i++) {
    assert.ok(Math.abs(actual[i]! - expected[i]!) <= 2e-4 * scale, `${what}[${i}]: ${actual[i]} vs ${expected[i]} (scale ${scale})`);
  }
}

const inputs = () => {
  const x = tf.randomNormal([3, 9, 9, 3], 0.5, 2, 'float32', 7);
  const y = tf.oneHot(tf.tensor1d([0, 1, 1], 'int32'), 2);
  return { x, y };
};

test('fused BatchNorm, ReLU6 and frozen-conv training match TF.js layers: loss, gradients, moving statistics', () => {
  const reference = buildModel(11);
  const fused = buildModel(11);
  freezeAllButBatchNorm(reference);
  freezeAllButBatchNorm(fused);
  assert.deepEqual(fuseTrainingLayers(tf, fused), { batchNorm: 3, relu6: 3, unfusedConv: 2 });
  const { x, y } = inputs();
  try {
    const expected = step(reference, x, y);
    const actual = step(fused, x, y);
    assert.ok(Math.abs(actual.loss - expected.loss) < 1e-5, `loss ${actual.loss} vs ${expected.loss}`);
    assert.deepEqual([...actual.grads.keys()].sort(), [...expected.grads.keys()].sort());
    assert.equal(actual.grads.size, 3 * 2 + 2, 'gamma and beta of 3 BN layers, the head kernel and bias');
    for (const [name, g] of expected.grads) assertClose(actual.grads.get(name)!, g, `gradient of ${name}`);
    for (const [name, m] of expected.moving) assertClose(actual.moving.get(name)!, m, name);
    // Inference is the original layers' own path.
    const a = reference.predict(x) as Tensor;
    const b = fused.predict(x) as Tensor;
    assertClose(b.dataSync() as Float32Array, a.dataSync() as Float32Array, 'inference');
    tf.dispose([a, b]);
  } finally {
    tf.dispose([x, y]);
    reference.dispose();
    fused.dispose();
  }
});

test('a fused training step runs the fused kernels: no filter gradient for frozen convs, no batchNorm or minimum', async () => {
  const model = buildModel(3);
  freezeAllButBatchNorm(model);
  fuseTrainingLayers(tf, model);
  const { x, y } = inputs();
  try {
    const profile = await tf.profile(() => {
      step(model, x, y);
    });
    const kernels = new Set(profile.kernelNames);
    for (const name of ['ImgpipeBatchNormTraining', 'ImgpipeBatchNormTrainingGrad', 'ImgpipeRelu6', 'ImgpipeRelu6Grad', 'Conv2DBackpropInput']) {
      assert.ok(kernels.has(name), `${name} ran`);
    }
    for (const name of ['Conv2DBackpropFilter', 'FusedConv2D', 'FusedBatchNorm', 'Minimum', 'ClipByValue'])
      assert.ok(!kernels.has(name), `${name} did not run`);
  } finally {
    tf.dispose([x, y]);
    model.dispose();
  }
});

test('fused training steps leak no tensors', () => {
  const model = buildModel(5);
  fuseTrainingLayers(tf, model);
  const { x, y } = inputs();
  try {
    step(model, x, y);
    const before = tf.memory().numTensors;
    for (let i = 0; i < 3; i++) step(model, x, y);
    assert.equal(tf.memory().numTensors, before);
  } finally {
    tf.dispose([x, y]);
    model.dispose();
  }
});

test('with every layer training, the conv on the input skips its input gradient and the gradients still match', async () => {
  const reference = buildModel(13);
  const fused = buildModel(13);
  assert.deepEqual(
    fuseTrainingLayers(tf, fused),
    { batchNorm: 3, relu6: 3, unfusedConv: 1 },
    'conv1 reads the input; pw is fed by trainable weights',
  );
  const { x, y } = inputs();
  const inputGradients = async (model: LayersModel) =>
    (await tf.profile(() => void step(model, x, y))).kernels.filter((k) => k.name === 'Conv2DBackpropInput').length;
  try {
    const expected = step(reference, x, y);
    const actual = step(fused, x, y);
    assert.ok(Math.abs(actual.loss - expected.loss) < 1e-5, `loss ${actual.loss} vs ${expected.loss}`);
    assert.ok(expected.grads.has('conv1/kernel'), [...expected.grads.keys()].join(' '));
    for (const [name, g] of expected.grads) assertClose(actual.grads.get(name)!, g, `gradient of ${name}`);
    assert.equal(await inputGradients(reference), 2, 'fused conv2d computes the input gradient of both convs');
    assert.equal(await inputGradients(fused), 1, "only pw's, which depthwise's weights need");
  } finally {
    tf.dispose([x, y]);
    reference.dispose();
    fused.dispose();
  }
});

test('trainable convs fed by trainable weights, and other backends, keep their layers', async () => {
  const model = buildModel(1);
  try {
    assert.deepEqual(fuseTrainingLayers(tf, model), { batchNorm: 3, relu6: 3, unfusedConv: 1 });
    tf.env().set('PROD', true); // no "install tfjs-node" banner from the cpu backend
    await tf.setBackend('cpu');
    const other = buildModel(1);
    assert.deepEqual(fuseTrainingLayers(tf, other), { batchNorm: 0, relu6: 0, unfusedConv: 0 });
    other.dispose();
  } finally {
    await tf.setBackend('wasm');
    model.dispose();
  }
});

/** step() with the reference in inference mode: TF.js layers' BatchNormalization called with training=false. */
function inferenceStep(model: LayersModel, x: Tensor, y: Tensor): ReturnType<typeof step> {
  const apply = model.apply.bind(model);
  model.apply = ((inputs: Tensor, kwargs: Record<string, unknown>) => apply(inputs, { ...kwargs, training: false })) as typeof model.apply;
  try {
    return step(model, x, y);
  } finally {
    model.apply = apply;
  }
}

/** Moving statistics away from their initial 0 and 1, so that using them is visible. */
function setMovingStatistics(model: LayersModel): void {
  for (const layer of model.layers) {
    if (layer.getClassName() !== 'BatchNormalization') continue;
    const [gamma, beta, mean] = layer.getWeights();
    const n = mean!.shape[0]!;
    const values = [tf.linspace(-1, 0.7, n), tf.linspace(0.3, 4, n)];
    layer.setWeights([gamma!, beta!, ...values]);
    tf.dispose(values);
  }
}

const movingBytes = (model: LayersModel) =>
  model.weights.filter((w) => /moving/.test(w.name)).map((w) => Buffer.from((w.read().dataSync() as Float32Array).buffer).toString('hex'));

for (const [what, prepare] of [
  ['every layer training', (_: LayersModel) => {}],
  ['only BatchNormalization and the head training', freezeAllButBatchNorm],
] as const) {
  test(`frozen-statistics BatchNorm in training matches TF.js layers' BatchNormalization with training=false (${what}), fused or not`, () => {
    const reference = buildModel(17);
    const frozen = buildModel(17);
    const frozenFused = buildModel(17);
    for (const model of [reference, frozen, frozenFused]) {
      setMovingStatistics(model);
      prepare(model);
    }
    assert.equal(freezeBatchNormStatistics(tf, frozen), 3);
    assert.equal(freezeBatchNormStatistics(tf, frozenFused), 3);
    assert.equal(fuseTrainingLayers(tf, frozenFused).batchNorm, 0, 'the fused training BatchNorm (batch statistics) is not used');
    const { x, y } = inputs();
    const moving = movingBytes(frozen);
    try {
      const expected = inferenceStep(reference, x, y);
      for (const model of [frozen, frozenFused]) {
        const actual = step(model, x, y);
        assert.ok(Math.abs(actual.loss - expected.loss) < 1e-5, `loss ${actual.loss} vs ${expected.loss}`);
        assert.deepEqual([...actual.grads.keys()].sort(), [...expected.grads.keys()].sort());
        assert.ok(actual.grads.has('bn2/gamma') && actual.grads.has('bn2/beta'));
        for (const [name, g] of expected.grads) assertClose(actual.grads.get(name)!, g, `gradient of ${name}`);
        assert.deepEqual(movingBytes(model), moving, 'moving statistics byte-identical after training steps');
      }
      // The unfrozen reference in training mode normalises with the batch's statistics, which differ.
      const batchStats = step(buildModel(17), x, y);
      assert.ok(Math.abs(batchStats.loss - expected.loss) > 1e-3, 'batch statistics give another loss');
      // Inference (predict) is unchanged.
      const a = reference.predict(x) as Tensor;
      const b = frozenFused.predict(x) as Tensor;
      assertClose(b.dataSync() as Float32Array, a.dataSync() as Float32Array, 'inference');
      tf.dispose([a, b]);
    } finally {
      tf.dispose([x, y]);
      reference.dispose();
      frozen.dispose();
      frozenFused.dispose();
    }
  });
}
