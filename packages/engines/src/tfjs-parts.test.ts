// TF.js as loadTf loads it, in a test process that imports nothing else from TF.js: only the parts, every gradient
// training needs (registered by tfjs-layers' bundle: tfjs-core's registers none), and no chained ops.
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { test } from 'node:test';
import { loadTf } from './tfjs-load.js';

const { tf } = await loadTf('wasm');

test('loadTf loads TF.js as its parts: no umbrella, WebGL or tfjs-data', () => {
  const loaded = Object.keys(createRequire(import.meta.url).cache)
    .map((path) => /\/node_modules\/(@tensorflow\/[^/]+)\//.exec(path)?.[1])
    .filter((name) => name !== undefined);
  assert.deepEqual([...new Set(loaded)].sort(), [
    '@tensorflow/tfjs-backend-cpu',
    '@tensorflow/tfjs-backend-wasm',
    '@tensorflow/tfjs-converter',
    '@tensorflow/tfjs-core',
    '@tensorflow/tfjs-layers',
  ]);
  assert.equal(tf.getBackend(), 'wasm');
});

test('the gradients of the kernels heads and fine-tuning run through are registered', () => {
  const kernels = [
    'Add',
    'AvgPool',
    'BatchMatMul',
    'Cast',
    'Concat',
    'Conv2D',
    'DepthwiseConv2dNative',
    'Exp',
    'FusedBatchNorm',
    'Log',
    'LogSoftmax',
    'MaxPool',
    'Mean',
    'Multiply',
    'Neg',
    'PadV2',
    'RealDiv',
    'Relu',
    'Relu6',
    'Reshape',
    'Rsqrt',
    'Sigmoid',
    'Softmax',
    'Sqrt',
    'Square',
    'Sub',
    'Sum',
  ];
  assert.deepEqual(
    kernels.filter((name) => !tf.getGradient(name)),
    [],
  );
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
