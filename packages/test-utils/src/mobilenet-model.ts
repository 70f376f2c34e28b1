import * as tf from '@imgpipe/engines/tfjs';
import { fileSaveHandler } from '@imgpipe/engines';
import { randomizeWeights } from './random-weights.js';
import { quietCpuBackend } from './tiny-models.js';

/**
 * A MobileNet v1 shaped TF.js layers model with random weights, laid out as keras.applications.MobileNet:
 * conv1 (3x3 stride 2 same, BN, ReLU(6)), 13 depthwise (BN, ReLU 6) + pointwise (BN, ReLU 6) blocks, the stride-2
 * ones after ZeroPadding2D ((0, 1), (0, 1)) with 'valid' padding, then global average pooling ('global_pool', the
 * feature layer), Reshape to 1x1, Dropout, a 1x1 conv 'conv_preds', Reshape and softmax ('predictions').
 */
export interface MobilenetOptions {
  dir: string;
  /** Width multiplier (keras.applications' alpha). */
  alpha?: number;
  inputSize?: number;
  classes?: number;
  seed?: number;
  /** Depthwise blocks to keep (default all 13; fewer for fast tests). */
  blocks?: number;
}

export interface MobilenetFiles {
  path: string;
  featureLayer: 'global_pool';
  /** Names of a few inner layers, for feature-layer cuts. */
  innerLayers: string[];
  featureDim: number;
}

const BLOCKS: [number, number][] = [
  [64, 1], [128, 2], [128, 1], [256, 2], [256, 1], [512, 2], [512, 1], [512, 1], [512, 1], [512, 1], [512, 1], [1024, 2], [1024, 1],
];

export async function buildMobilenetV1(options: MobilenetOptions): Promise<MobilenetFiles> {
  const { dir, alpha = 0.25, inputSize = 224, classes = 10, seed = 7, blocks = BLOCKS.length } = options;
  quietCpuBackend();
  const input = tf.input({ shape: [inputSize, inputSize, 3], name: 'input_1' });
  const apply = (layer: tf.layers.Layer, x: tf.SymbolicTensor) => layer.apply(x) as tf.SymbolicTensor;
  let x = apply(tf.layers.conv2d({ name: 'conv1', filters: Math.floor(32 * alpha), kernelSize: 3, strides: 2, padding: 'same', useBias: false }), input);
  x = apply(tf.layers.batchNormalization({ name: 'conv1_bn', axis: -1 }), x);
  x = apply(tf.layers.reLU({ name: 'conv1_relu', maxValue: 6 }), x);
  let channels = 0;
  BLOCKS.slice(0, blocks).forEach(([filters, stride], i) => {
    const id = i + 1;
    if (stride === 2) x = apply(tf.layers.zeroPadding2d({ name: `conv_pad_${id}`, padding: [[0, 1], [0, 1]] }), x);
    x = apply(tf.layers.depthwiseConv2d({ name: `conv_dw_${id}`, kernelSize: 3, strides: stride, padding: stride === 1 ? 'same' : 'valid', useBias: false }), x);
    x = apply(tf.layers.batchNormalization({ name: `conv_dw_${id}_bn`, axis: -1 }), x);
    x = apply(tf.layers.reLU({ name: `conv_dw_${id}_relu`, maxValue: 6 }), x);
    channels = Math.floor(filters * alpha);
    x = apply(tf.layers.conv2d({ name: `conv_pw_${id}`, filters: channels, kernelSize: 1, padding: 'same', useBias: false }), x);
    x = apply(tf.layers.batchNormalization({ name: `conv_pw_${id}_bn`, axis: -1 }), x);
    x = apply(tf.layers.reLU({ name: `conv_pw_${id}_relu`, maxValue: 6 }), x);
  });
  x = apply(tf.layers.globalAveragePooling2d({ name: 'global_pool' }), x);
  x = apply(tf.layers.reshape({ name: 'reshape_1', targetShape: [1, 1, channels] }), x);
  x = apply(tf.layers.dropout({ name: 'dropout', rate: 0.001 }), x);
  x = apply(tf.layers.conv2d({ name: 'conv_preds', filters: classes, kernelSize: 1, padding: 'same' }), x);
  x = apply(tf.layers.reshape({ name: 'reshape_2', targetShape: [classes] }), x);
  x = apply(tf.layers.activation({ name: 'predictions', activation: 'softmax' }), x);
  const model = tf.model({ inputs: input, outputs: x, name: `mobilenet_${alpha}_${inputSize}` });
  randomizeWeights(model, seed);
  await model.save(fileSaveHandler(dir));
  model.dispose();
  const middle = Math.max(1, Math.ceil(blocks / 2));
  return { path: `${dir}/model.json`, featureLayer: 'global_pool', innerLayers: [`conv_pw_${middle}_relu`, `conv_dw_${middle}`], featureDim: channels };
}
