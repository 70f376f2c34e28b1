import { join } from 'node:path';
import * as tf from '@imgpipe/engines/tfjs';
import { fileSaveHandler } from '@imgpipe/engines';
import { createRng } from '@imgpipe/kit';
import { quietCpuBackend } from './tiny-models.js';

/**
 * A MobileNet v1 shaped TF.js layers model with random weights (nothing is downloaded), for fine-tuning tests and
 * benchmarks. Two layouts: 'tfjs-models' like the mobilenet_v1 models TF.js hands out (strided convs with 'same'
 * padding, Activation('relu6')) and 'keras' like keras.applications (ZeroPadding2D then 'valid', ReLU(6)).
 *   conv1 3x3/2 -> bn -> relu6 -> 13 x [depthwise 3x3 -> bn -> relu6 -> pointwise 1x1 -> bn -> relu6]
 *   -> global average pool ('features') -> reshape -> dropout -> 1x1 conv -> reshape -> softmax ('logits')
 */
export interface MobileNetOptions {
  dir: string;
  /** Width multiplier. Default 0.5. */
  alpha?: number;
  inputSize?: number;
  seed?: number;
  classes?: number;
  layout?: 'tfjs-models' | 'keras';
  /** Keep only the first depthwise blocks (1-13; default all 13), for small test models. */
  blocks?: number;
  /** Channel multiplier of the depthwise convs (1 in MobileNet). */
  depthMultiplier?: number;
}

export interface MobileNetFiles {
  path: string;
  featureLayer: 'features';
  featureDim: number;
}

/** [pointwise filters, stride] of MobileNet v1's 13 depthwise blocks. */
const BLOCKS: [number, number][] = [
  [64, 1], [128, 2], [128, 1], [256, 2], [256, 1], [512, 2],
  [512, 1], [512, 1], [512, 1], [512, 1], [512, 1], [1024, 2], [1024, 1],
];

export async function buildMobileNetV1(options: MobileNetOptions): Promise<MobileNetFiles> {
  const { dir, alpha = 0.5, inputSize = 224, seed = 1, classes = 10, layout = 'tfjs-models', blocks = 13, depthMultiplier = 1 } = options;
  quietCpuBackend();
  const keras = layout === 'keras';
  const relu6 = (name: string) => (keras ? tf.layers.reLU({ maxValue: 6, name }) : tf.layers.activation({ activation: 'relu6', name }));
  const bn = (name: string) => tf.layers.batchNormalization({ name, epsilon: 1e-3, momentum: 0.99 });
  const apply = (layer: { apply(x: tf.SymbolicTensor): unknown }, x: tf.SymbolicTensor) => layer.apply(x) as tf.SymbolicTensor;
  const input = tf.input({ shape: [inputSize, inputSize, 3], name: 'input' });
  let x = input;
  const stem = Math.round(32 * alpha);
  if (keras) x = apply(tf.layers.zeroPadding2d({ padding: [[0, 1], [0, 1]], name: 'conv1_pad' }), x);
  x = apply(tf.layers.conv2d({ name: 'conv1', filters: stem, kernelSize: 3, strides: 2, padding: keras ? 'valid' : 'same', useBias: false }), x);
  x = apply(relu6('conv1_relu'), apply(bn('conv1_bn'), x));
  let channels = stem;
  for (const [i, [filters, stride]] of BLOCKS.slice(0, blocks).entries()) {
    const id = i + 1;
    if (keras && stride === 2) x = apply(tf.layers.zeroPadding2d({ padding: [[0, 1], [0, 1]], name: `conv_pad_${id}` }), x);
    const dwPadding = keras && stride === 2 ? 'valid' : 'same';
    x = apply(tf.layers.depthwiseConv2d({ name: `conv_dw_${id}`, kernelSize: 3, strides: stride, padding: dwPadding, depthMultiplier, useBias: false }), x);
    x = apply(relu6(`conv_dw_${id}_relu`), apply(bn(`conv_dw_${id}_bn`), x));
    x = apply(tf.layers.conv2d({ name: `conv_pw_${id}`, filters: Math.round(filters * alpha), kernelSize: 1, useBias: false }), x);
    x = apply(relu6(`conv_pw_${id}_relu`), apply(bn(`conv_pw_${id}_bn`), x));
    channels = Math.round(filters * alpha);
  }
  x = apply(tf.layers.globalAveragePooling2d({ name: 'features' }), x);
  x = apply(tf.layers.reshape({ targetShape: [1, 1, channels], name: 'reshape_1' }), x);
  x = apply(tf.layers.dropout({ rate: 1e-3, name: 'dropout' }), x);
  x = apply(tf.layers.conv2d({ name: 'conv_preds', filters: classes, kernelSize: 1 }), x);
  x = apply(tf.layers.reshape({ targetShape: [classes], name: 'reshape_2' }), x);
  x = apply(tf.layers.activation({ activation: 'softmax', name: 'logits' }), x);
  const model = tf.model({ inputs: input, outputs: x, name: `mobilenet_v1_${alpha}_${inputSize}` });
  model.setWeights(randomWeights(model, seed));
  await model.save(fileSaveHandler(dir));
  model.dispose();
  return { path: join(dir, 'model.json'), featureLayer: 'features', featureDim: channels };
}

/** He-scaled uniform kernels; BatchNorm gamma near 1, beta and moving mean near 0, moving variance near 1. */
function randomWeights(model: tf.LayersModel, seed: number): tf.Tensor[] {
  const rand = createRng(seed);
  return model.weights.map((w) => {
    const shape = w.shape as number[];
    const size = shape.reduce((a, b) => a * b, 1);
    const fill = (f: () => number) => tf.tensor(Float32Array.from({ length: size }, f), shape);
    const name = w.originalName;
    if (name.endsWith('gamma') || name.endsWith('moving_variance')) return fill(() => 1 + (rand() - 0.5) * 0.2);
    if (name.endsWith('beta') || name.endsWith('moving_mean') || name.endsWith('bias')) return fill(() => (rand() - 0.5) * 0.02);
    // HWIO kernels (depthwise: [h, w, in, multiplier]): fan-in is h * w * in, or h * w for depthwise.
    const fanIn = name.includes('depthwise') ? shape[0]! * shape[1]! : size / shape.at(-1)!;
    const scale = Math.sqrt(6 / fanIn);
    return fill(() => (rand() * 2 - 1) * scale);
  });
}
