// Training a conv net on TF.js WebAssembly: wasm lacks the conv gradient kernels, so the net trains only once
// registerTrainingKernels has added them (what train's fine-tuning does); loadTf alone leaves TF.js's stock kernels.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Scalar, Tensor, Variable } from '@tensorflow/tfjs-core';
import { loadTf } from '@imgpipe/engines';
import type { SymbolicTensor } from '@imgpipe/engines/tfjs-parts';
import { registerTrainingKernels } from './register-training-kernels.js';

const { tf } = await loadTf('wasm');

test('loadTf alone registers none of the training kernels; registerTrainingKernels adds and replaces them, once', () => {
  const stock = {
    Tile: tf.getKernel('Tile', 'wasm')?.kernelFunc,
    Sum: tf.getKernel('Sum', 'wasm')?.kernelFunc,
    Minimum: tf.getKernel('Minimum', 'wasm')?.kernelFunc,
  };
  for (const kernelFunc of Object.values(stock)) assert.equal(typeof kernelFunc, 'function');
  assert.equal(tf.getKernel('Conv2DBackpropFilter', 'wasm'), undefined);
  assert.equal(tf.getKernel('ImgpipeBatchNormTraining', 'wasm'), undefined);
  registerTrainingKernels(tf);
  assert.ok(tf.getKernel('Conv2DBackpropFilter', 'wasm'));
  assert.ok(tf.getKernel('ImgpipeBatchNormTraining', 'wasm'));
  const replaced = {
    Tile: tf.getKernel('Tile', 'wasm')?.kernelFunc,
    Sum: tf.getKernel('Sum', 'wasm')?.kernelFunc,
    Minimum: tf.getKernel('Minimum', 'wasm')?.kernelFunc,
  };
  for (const name of ['Tile', 'Sum', 'Minimum'] as const) assert.notEqual(replaced[name], stock[name], name);
  registerTrainingKernels(tf);
  assert.equal(tf.getKernel('Tile', 'wasm')?.kernelFunc, replaced.Tile, 'registering again changes nothing');
});

test('a conv net trains through the loaded tf: every weight gets a gradient, and one matches central differences', () => {
  const input = tf.input({ shape: [6, 6, 2] });
  let h = tf.layers
    .conv2d({ filters: 3, kernelSize: 3, padding: 'same', activation: 'relu', kernelInitializer: tf.initializers.glorotUniform({ seed: 1 }) })
    .apply(input);
  h = tf.layers
    .depthwiseConv2d({ kernelSize: 3, strides: 2, activation: 'relu6', depthwiseInitializer: tf.initializers.glorotUniform({ seed: 2 }) })
    .apply(h);
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
