// TF.js as loadTf loads it, in a test process that imports nothing else from TF.js: only the parts, every gradient
// training needs (registered by tfjs-layers' bundle: tfjs-core's registers none), and no chained ops.
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { test } from 'node:test';
import type { Scalar, Tensor, Variable } from '@tensorflow/tfjs-core';
import type { SymbolicTensor } from '@tensorflow/tfjs-layers';
import { loadTf } from './tf.js';

const { tf } = await loadTf('wasm');

test('loadTf loads TF.js as its parts: no umbrella, WebGL or tfjs-data', () => {
  const loaded = Object.keys(createRequire(import.meta.url).cache)
    .map((path) => /\/node_modules\/(@tensorflow\/[^/]+)\//.exec(path)?.[1])
    .filter((name) => name !== undefined);
  assert.deepEqual(
    [...new Set(loaded)].sort(),
    ['@tensorflow/tfjs-backend-cpu', '@tensorflow/tfjs-backend-wasm', '@tensorflow/tfjs-converter', '@tensorflow/tfjs-core', '@tensorflow/tfjs-layers'],
  );
  assert.equal(tf.getBackend(), 'wasm');
});

test('the gradients of the kernels heads and fine-tuning run through are registered', () => {
  const kernels = ['Add', 'AvgPool', 'BatchMatMul', 'Cast', 'Concat', 'Conv2D', 'DepthwiseConv2dNative', 'Exp', 'FusedBatchNorm', 'Log', 'LogSoftmax', 'MaxPool', 'Mean', 'Multiply', 'Neg', 'PadV2', 'RealDiv', 'Relu', 'Relu6', 'Reshape', 'Rsqrt', 'Sigmoid', 'Softmax', 'Sqrt', 'Square', 'Sub', 'Sum'];
  assert.deepEqual(kernels.filter((name) => !tf.getGradient(name)), []);
});

test('a conv net trains through the loaded tf: every weight gets a gradient, and one matches central differences', () => {
  const input = tf.input({ shape: [6, 6, 2] });
  let h = tf.layers.conv2d({ filters: 3, kernelSize: 3, padding: 'same', activation: 'relu', kernelInitializer: tf.initializers.glorotUniform({ seed: 1 }) }).apply(input);
  h = tf.layers.depthwiseConv2d({ kernelSize: 3, strides: 2, activation: 'relu6', depthwiseInitializer: tf.initializers.glorotUniform({ seed: 2 }) }).apply(h);
  h = tf.layers.batchNormalization().apply(h);
  h = tf.layers.globalAveragePooling2d({}).apply(h);
  const logits = tf.layers.dense({ units: 2, kernelInitializer: tf.initializers.glorotUniform({ seed: 3 }) }).apply(h) as SymbolicTensor;
  const model = tf.model({ inputs: input, outputs: logits });
  const x = tf.randomUniform([4, 6, 6, 2], 0, 1, 'float32', 4);
  const y = tf.oneHot(tf.tensor1d([0, 1, 1, 0], 'int32'), 2);
  const loss = () => tf.tidy(() => tf.losses.softmaxCrossEntropy(y, model.apply(x, { training: true }) as Tensor) as Scalar);
  const variables = model.trainableWeights.map((w) => w.read() as Variable);
  const before = tf.memory().numTensors;

  const { value, grads } = tf.variableGrads(loss, variables);
  assert.deepEqual(Object.keys(grads).sort(), variables.map((v) => v.name).sort());
  for (const [name, grad] of Object.entries(grads)) {
    const values = grad.dataSync();
    assert.ok(values.every(Number.isFinite) && values.some((v) => v !== 0), `gradient of ${name}: ${values}`);
  }

  const kernel = variables[0]!; // the first conv's kernel
  const original = Float32Array.from(kernel.dataSync());
  const set = (values: Float32Array) => {
    const t = tf.tensor(values, kernel.shape);
    kernel.assign(t);
    t.dispose();
  };
  const lossWith = (delta: number) => {
    const moved = original.slice();
    moved[5]! += delta;
    set(moved);
    return tf.tidy(() => loss().dataSync()[0]!);
  };
  const eps = 1e-2;
  const numeric = (lossWith(eps) - lossWith(-eps)) / (2 * eps);
  set(original);
  const analytic = grads[kernel.name]!.dataSync()[5]!;
  assert.ok(Math.abs(numeric - analytic) <= 1e-3 + 0.05 * Math.abs(analytic), `d loss / d kernel[5]: ${analytic} analytic, ${numeric} numeric`);

  tf.dispose([value, ...Object.values(grads)]);
  assert.equal(tf.memory().numTensors, before, 'no tensors left behind');
  tf.dispose([x, y]);
  model.dispose();
});

test('no chained ops: imgpipe calls ops as functions (tf.div(x, y)), and the Tf type rejects x.div(y)', () => {
  const x = tf.tensor1d([2, 4]);
  // @ts-expect-error chained ops are registered only by the @tensorflow/tfjs umbrella, which imgpipe does not load
  const chained: unknown = x.div;
  assert.equal(chained, undefined);
  const half = tf.div(x, 2);
  assert.deepEqual([...half.dataSync()], [1, 2]);
  tf.dispose([x, half]);
});
