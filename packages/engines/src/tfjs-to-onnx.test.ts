import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import * as tf from '@imgpipe/engines/tfjs-parts';
import { makeTempDir, type TempDir } from '@imgpipe/test-utils';
import { quietCpuBackend } from './test-quiet-cpu.js';
import { randomizeWeights } from './test-random-weights.js';
import { loadBackbone } from '@imgpipe/engines';
import { createLogger } from '@imgpipe/kit';
import { fileSaveHandler } from '@imgpipe/engines';
import { createRng } from '@imgpipe/kit';
import { ACTIVATIONS } from '@imgpipe/tfjs-onnx/tfjs-onnx-activations';
import { LAYER_CONVERTERS } from '@imgpipe/tfjs-onnx/tfjs-onnx-layers';

// Per layer: small TF.js layers models with random weights, run through loadBackbone on ONNX Runtime (converted)
// and on TF.js wasm (the reference). Features must agree within 1e-4, max absolute difference.
const TOLERANCE = 1e-4;
const COUNT = 3;

type Build = (x: tf.SymbolicTensor) => tf.SymbolicTensor;
const L = tf.layers;
const ap = (layer: tf.layers.Layer, x: tf.SymbolicTensor | tf.SymbolicTensor[]) => layer.apply(x) as tf.SymbolicTensor;

interface Case {
  name: string;
  size: number;
  build?: Build;
  sequential?: (size: number) => (tf.layers.Layer | tf.LayersModel)[];
  /** Default: the model's output. */
  featureLayer?: string;
}

const CASES: Case[] = [
  {
    name: 'Conv2D: same with stride 2 (pads 0/1), valid with dilation 2, no bias',
    size: 16,
    build: (x) => {
      const a = ap(L.conv2d({ filters: 5, kernelSize: 3, strides: 2, padding: 'same', activation: 'relu' }), x);
      return ap(L.conv2d({ filters: 4, kernelSize: 3, padding: 'valid', dilationRate: 2, useBias: false, activation: 'tanh' }), a);
    },
  },
  {
    name: 'Conv2D: odd sizes, 4x4 stride 3 same, 3x2 kernel with strides [2, 1]',
    size: 15,
    build: (x) => {
      const a = ap(L.conv2d({ filters: 4, kernelSize: 4, strides: 3, padding: 'same', activation: 'sigmoid' }), x);
      return ap(L.conv2d({ filters: 3, kernelSize: [3, 2], strides: [2, 1], padding: 'same' }), a);
    },
  },
  {
    name: 'DepthwiseConv2D: same stride 2 on an odd size with depth multiplier 2, valid without bias',
    size: 15,
    build: (x) => {
      const a = ap(L.depthwiseConv2d({ kernelSize: 3, strides: 2, padding: 'same', depthMultiplier: 2, activation: 'swish' }), x);
      return ap(L.depthwiseConv2d({ kernelSize: 3, padding: 'valid', useBias: false, activation: 'relu6' }), a);
    },
  },
  {
    name: 'SeparableConv2D: same stride 2, valid with dilation 2 and no bias',
    size: 13,
    build: (x) => {
      const a = ap(L.separableConv2d({ filters: 5, kernelSize: 3, strides: 2, padding: 'same', activation: 'relu' }), x);
      return ap(L.separableConv2d({ filters: 4, kernelSize: 3, padding: 'valid', dilationRate: 2, useBias: false }), a);
    },
  },
  {
    name: 'BatchNormalization, then each activation, concatenated on the channels',
    size: 8,
    build: (x) => {
      const bn = ap(L.batchNormalization({}), ap(L.conv2d({ filters: 4, kernelSize: 1 }), x));
      const names = ['relu', 'relu6', 'sigmoid', 'tanh', 'swish', 'hardSigmoid', 'linear', 'softmax'] as const;
      return ap(
        L.concatenate({ axis: -1 }),
        names.map((activation) => ap(L.activation({ activation }), bn)),
      );
    },
  },
  {
    name: 'ReLU layers (max_value 6 and none), Add',
    size: 8,
    build: (x) => {
      const c = ap(L.conv2d({ filters: 4, kernelSize: 3, padding: 'same' }), x);
      const scaled = ap(L.conv2d({ filters: 4, kernelSize: 1 }), c);
      return ap(L.add({}), [ap(L.reLU({ maxValue: 6 }), c), ap(L.reLU({}), scaled), c]);
    },
  },
  {
    name: 'Multiply: same shapes and a squeeze-excite broadcast over [1, 1, C]; Reshape to rank 3',
    size: 8,
    build: (x) => {
      const a = ap(L.conv2d({ filters: 4, kernelSize: 3, padding: 'same' }), x);
      const b = ap(L.conv2d({ filters: 4, kernelSize: 1, activation: 'sigmoid' }), x);
      const gate = ap(L.reshape({ targetShape: [1, 1, 4] }), ap(L.dense({ units: 4, activation: 'sigmoid' }), ap(L.globalAveragePooling2d({}), a)));
      return ap(L.multiply({}), [ap(L.multiply({}), [a, b]), gate]);
    },
  },
  {
    name: 'Concatenate along height and width',
    size: 6,
    build: (x) => {
      const a = ap(L.conv2d({ filters: 3, kernelSize: 3, padding: 'same' }), x);
      const b = ap(L.conv2d({ filters: 3, kernelSize: 1 }), x);
      return ap(L.concatenate({ axis: 2 }), [ap(L.concatenate({ axis: 1 }), [a, b]), ap(L.concatenate({ axis: 1 }), [b, a])]);
    },
  },
  {
    name: 'ZeroPadding2D (asymmetric), MaxPooling2D and AveragePooling2D same stride 2 on odd sizes, valid pooling',
    size: 15,
    build: (x) => {
      const p = ap(
        L.zeroPadding2d({
          padding: [
            [1, 2],
            [0, 3],
          ],
        }),
        ap(L.conv2d({ filters: 3, kernelSize: 1 }), x),
      );
      const m = ap(L.maxPooling2d({ poolSize: 3, strides: 2, padding: 'same' }), p);
      const a = ap(L.averagePooling2d({ poolSize: 3, strides: 2, padding: 'same' }), m);
      return ap(L.maxPooling2d({ poolSize: 2, padding: 'valid' }), ap(L.averagePooling2d({ poolSize: 2, strides: 1, padding: 'valid' }), a));
    },
  },
  {
    name: 'GlobalAveragePooling2D, Dense, Dropout, BatchNormalization on 2-D, softmax Dense',
    size: 8,
    build: (x) => {
      const g = ap(L.globalAveragePooling2d({}), ap(L.conv2d({ filters: 6, kernelSize: 3, activation: 'relu' }), x));
      const d = ap(L.dropout({ rate: 0.5 }), ap(L.dense({ units: 6, activation: 'relu' }), g));
      return ap(L.dense({ units: 3, activation: 'softmax' }), ap(L.batchNormalization({}), d));
    },
  },
  {
    name: "Flatten in TF's NHWC order, then Dense",
    size: 6,
    build: (x) => ap(L.dense({ units: 5 }), ap(L.flatten({}), ap(L.conv2d({ filters: 3, kernelSize: 3, padding: 'same' }), x))),
  },
  {
    name: 'Reshape to 2-D, Dense on a 3-D tensor, Reshape back to 4-D',
    size: 6,
    build: (x) => {
      const r = ap(L.reshape({ targetShape: [-1, 3] }), ap(L.conv2d({ filters: 3, kernelSize: 3, padding: 'same' }), x));
      return ap(L.reshape({ targetShape: [6, 6, 4] }), ap(L.dense({ units: 4, activation: 'tanh' }), r));
    },
  },
  {
    name: 'Sequential model: Conv2D, MaxPooling2D, Flatten, Dense',
    size: 10,
    sequential: (size) => [
      L.conv2d({ inputShape: [size, size, 3], filters: 4, kernelSize: 3, strides: 2, padding: 'same', activation: 'relu' }),
      L.maxPooling2d({ poolSize: 2 }),
      L.flatten({}),
      L.dense({ units: 3 }),
    ],
  },
  {
    name: 'a Sequential model nested in a Sequential one, as Teachable Machine saves them, cut at the nested model',
    size: 10,
    featureLayer: 'nested_backbone',
    sequential: (size) => [
      tf.sequential({
        name: 'nested_backbone',
        layers: [
          L.conv2d({ inputShape: [size, size, 3], filters: 4, kernelSize: 3, strides: 2, padding: 'same', activation: 'relu6' }),
          L.globalAveragePooling2d({}),
        ],
      }),
      tf.sequential({ layers: [L.dense({ inputShape: [4], units: 3, activation: 'softmax' })] }),
    ],
  },
  {
    name: 'a Sequential model called inside a functional one',
    size: 9,
    build: (x) => {
      const inner = tf.sequential({
        layers: [L.conv2d({ inputShape: [9, 9, 3], filters: 3, kernelSize: 3, padding: 'same' }), L.reLU({ maxValue: 6 })],
      });
      return ap(L.add({}), [ap(inner, x), ap(L.conv2d({ filters: 3, kernelSize: 1 }), x)]);
    },
  },
];

function maxDiff(a: Float32Array, b: Float32Array): number {
  assert.equal(a.length, b.length);
  let max = 0;
  for (let i = 0; i < a.length; i++) max = Math.max(max, Math.abs(a[i]! - b[i]!));
  return max;
}

async function saveModel(dir: string, c: Case, seed: number): Promise<string> {
  quietCpuBackend();
  let model: tf.LayersModel;
  if (c.sequential) {
    model = tf.sequential({ layers: c.sequential(c.size) as tf.layers.Layer[] });
  } else {
    const input = tf.input({ shape: [c.size, c.size, 3] });
    model = tf.model({ inputs: input, outputs: c.build!(input) });
  }
  randomizeWeights(model, seed);
  await model.save(fileSaveHandler(dir));
  model.dispose();
  return join(dir, 'model.json');
}

/** Features of the converted model (ONNX Runtime cpu) and of TF.js on wasm, for random pixels. */
async function bothEngines(path: string, size: number, cacheDir: string, seed: number, featureLayer?: string) {
  const rand = createRng(seed);
  const pixels = Uint8Array.from({ length: COUNT * size * size * 3 }, () => Math.floor(rand() * 256));
  const lines: string[] = [];
  const log = createLogger({ name: 'test', stream: { write: (line: string) => lines.push(line) > 0 } as unknown as NodeJS.WritableStream });
  const cut = featureLayer ? { featureLayer } : {};
  const onnx = await loadBackbone(path, { device: 'cpu', preprocess: 'tf', cacheDir, log, ...cut });
  const tfjs = await loadBackbone(path, { device: 'wasm', preprocess: 'tf', workers: 1, cacheDir, ...cut });
  try {
    return {
      onnx: await onnx.extract(pixels, COUNT),
      tfjs: await tfjs.extract(pixels, COUNT),
      onnxInfo: onnx.info,
      tfjsInfo: tfjs.info,
      log: lines.join(''),
    };
  } finally {
    await onnx.dispose();
    await tfjs.dispose();
  }
}

describe('TF.js layers -> ONNX: each layer gives the features TF.js gives', () => {
  let temp: TempDir;
  const classesSeen = new Set<string>();
  const activationsSeen = new Set<string>();
  before(async () => {
    temp = await makeTempDir('imgpipe-tfjs-onnx-');
  });
  after(async () => {
    await temp.remove();
  });

  CASES.forEach((c, i) => {
    it(c.name, async () => {
      const path = await saveModel(join(temp.path, `case-${i}`), c, 100 + i);
      const json = JSON.parse(await readFile(path, 'utf8')) as { modelTopology: unknown };
      const text = JSON.stringify(json.modelTopology);
      for (const m of text.matchAll(/"class_name":"(\w+)"/g)) classesSeen.add(m[1]!);
      for (const m of text.matchAll(/"activation":"(\w+)"/g)) activationsSeen.add(m[1]!.replace(/([a-z])([A-Z])/g, '$1_$2').toLowerCase());
      const { onnx, tfjs, onnxInfo, tfjsInfo, log } = await bothEngines(path, c.size, join(temp.path, 'cache'), i, c.featureLayer);
      assert.equal(onnxInfo.engine, 'onnxruntime', log);
      assert.equal(onnxInfo.converted_from, 'tfjs-layers');
      assert.equal(tfjsInfo.engine, 'tfjs');
      assert.equal(onnxInfo.feature_dim, tfjsInfo.feature_dim);
      assert.equal(onnxInfo.feature_layer, tfjsInfo.feature_layer);
      assert.ok(
        tfjs.some((v) => Math.abs(v) > 1e-3),
        'the reference has signal',
      );
      const diff = maxDiff(onnx, tfjs);
      assert.ok(diff <= TOLERANCE, `max abs difference ${diff}`);
    });
  });

  it('hard_swish (which TF.js itself cannot run): x * relu6(x + 3) / 6 of the linear model', async () => {
    const c: Case = {
      name: 'hard_swish',
      size: 9,
      build: (x) => ap(L.conv2d({ name: 'conv', filters: 4, kernelSize: 3, strides: 2, padding: 'same' }), x),
    };
    const linear = await saveModel(join(temp.path, 'linear'), c, 7);
    const text = await readFile(linear, 'utf8');
    assert.match(text, /"activation": "linear"/);
    await writeFile(join(temp.path, 'linear', 'hard-swish.json'), text.replace(/"activation": "linear"/, '"activation": "hard_swish"'));
    const rand = createRng(3);
    const pixels = Uint8Array.from({ length: COUNT * 9 * 9 * 3 }, () => Math.floor(rand() * 256));
    const tfjs = await loadBackbone(linear, { device: 'wasm', preprocess: 'tf', workers: 1 });
    const onnx = await loadBackbone(join(temp.path, 'linear', 'hard-swish.json'), {
      device: 'cpu',
      preprocess: 'tf',
      cacheDir: join(temp.path, 'cache'),
    });
    const y = await tfjs.extract(pixels, COUNT);
    const expected = y.map((v) => (v * Math.min(Math.max(v + 3, 0), 6)) / 6);
    const got = await onnx.extract(pixels, COUNT);
    assert.equal(onnx.info.engine, 'onnxruntime');
    assert.ok(
      y.some((v) => v > -3 && v < 3),
      `inputs reach the curved part: ${y.slice(0, 8)}`,
    );
    assert.ok(maxDiff(got, expected) <= TOLERANCE, `max abs difference ${maxDiff(got, expected)}: ${got.slice(0, 4)} vs ${expected.slice(0, 4)}`);
    activationsSeen.add('hard_swish');
    await tfjs.dispose();
    await onnx.dispose();
  });

  it('the cases cover every layer class and activation the converter supports', () => {
    for (const name of Object.keys(LAYER_CONVERTERS)) assert.ok(classesSeen.has(name), `no case covers ${name}`);
    for (const name of ACTIVATIONS) assert.ok(activationsSeen.has(name), `no case covers activation ${name}`);
  });
});
