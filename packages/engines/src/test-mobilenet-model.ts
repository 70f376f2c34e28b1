import { join } from 'node:path';
import * as tf from './tfjs-parts.js';
import { fileSaveHandler } from './tfjs-io.js';
import { randomizeWeights } from './test-random-weights.js';
import { quietCpuBackend } from './test-quiet-cpu.js';

/**
 * A MobileNet v1 shaped TF.js layers model with random weights (nothing is downloaded), for conversion and
 * fine-tuning tests and benchmarks. Two layouts:
 * - 'keras', as keras.applications.MobileNet builds it: conv1 3x3/2 'same', ReLU(6) layers, and each stride-2
 *   depthwise conv after ZeroPadding2D ((0, 1), (0, 1)) with 'valid' padding; layers input_1 ... 'global_pool' ...
 *   'predictions'.
 * - 'tfjs-models', like the mobilenet_v1 models TF.js hands out: strided convs with 'same' padding,
 *   Activation('relu6'); layers input ... 'features' ... 'logits'.
 *   conv1 -> bn -> relu6 -> blocks x [depthwise 3x3 -> bn -> relu6 -> pointwise 1x1 -> bn -> relu6]
 *   -> global average pool (the feature layer) -> reshape -> dropout -> 1x1 conv 'conv_preds' -> reshape -> softmax
 */
interface MobileNetOptions {
  dir: string;
  /** Width multiplier (keras.applications' alpha); channels are floor(filters * alpha). Default 0.5. */
  alpha?: number;
  inputSize?: number;
  seed?: number;
  classes?: number;
  /** Default 'tfjs-models'. */
  layout?: 'tfjs-models' | 'keras';
  /** Keep only the first depthwise blocks (1-13; default all 13), for small test models. */
  blocks?: number;
  /** Channel multiplier of the depthwise convs (1 in MobileNet). */
  depthMultiplier?: number;
}

export interface MobileNetFiles {
  path: string;
  /** The global average pooling layer: 'global_pool' (keras layout) or 'features' (tfjs-models). */
  featureLayer: string;
  /** Names of a few inner layers (of the middle block), for feature-layer cuts. */
  innerLayers: string[];
  featureDim: number;
}

/** [pointwise filters, stride] of MobileNet v1's 13 depthwise blocks. */
const BLOCKS: [number, number][] = [
  [64, 1],
  [128, 2],
  [128, 1],
  [256, 2],
  [256, 1],
  [512, 2],
  [512, 1],
  [512, 1],
  [512, 1],
  [512, 1],
  [512, 1],
  [1024, 2],
  [1024, 1],
];

export async function buildMobileNetV1(options: MobileNetOptions): Promise<MobileNetFiles> {
  const { dir, alpha = 0.5, inputSize = 224, seed = 1, classes = 10, layout = 'tfjs-models', blocks = BLOCKS.length, depthMultiplier = 1 } = options;
  quietCpuBackend();
  const keras = layout === 'keras';
  const names = keras
    ? { input: 'input_1', features: 'global_pool', output: 'predictions' }
    : { input: 'input', features: 'features', output: 'logits' };
  const relu6 = (name: string) => (keras ? tf.layers.reLU({ maxValue: 6, name }) : tf.layers.activation({ activation: 'relu6', name }));
  const bn = (name: string) => tf.layers.batchNormalization({ name, epsilon: 1e-3, momentum: 0.99 });
  const apply = (layer: { apply(x: tf.SymbolicTensor): unknown }, x: tf.SymbolicTensor) => layer.apply(x) as tf.SymbolicTensor;
  const input = tf.input({ shape: [inputSize, inputSize, 3], name: names.input });
  const stem = Math.floor(32 * alpha);
  let x = apply(tf.layers.conv2d({ name: 'conv1', filters: stem, kernelSize: 3, strides: 2, padding: 'same', useBias: false }), input);
  x = apply(relu6('conv1_relu'), apply(bn('conv1_bn'), x));
  let channels = stem;
  for (const [i, [filters, stride]] of BLOCKS.slice(0, blocks).entries()) {
    const id = i + 1;
    const padded = keras && stride === 2;
    if (padded)
      x = apply(
        tf.layers.zeroPadding2d({
          padding: [
            [0, 1],
            [0, 1],
          ],
          name: `conv_pad_${id}`,
        }),
        x,
      );
    x = apply(
      tf.layers.depthwiseConv2d({
        name: `conv_dw_${id}`,
        kernelSize: 3,
        strides: stride,
        padding: padded ? 'valid' : 'same',
        depthMultiplier,
        useBias: false,
      }),
      x,
    );
    x = apply(relu6(`conv_dw_${id}_relu`), apply(bn(`conv_dw_${id}_bn`), x));
    channels = Math.floor(filters * alpha);
    x = apply(tf.layers.conv2d({ name: `conv_pw_${id}`, filters: channels, kernelSize: 1, padding: 'same', useBias: false }), x);
    x = apply(relu6(`conv_pw_${id}_relu`), apply(bn(`conv_pw_${id}_bn`), x));
  }
  x = apply(tf.layers.globalAveragePooling2d({ name: names.features }), x);
  x = apply(tf.layers.reshape({ targetShape: [1, 1, channels], name: 'reshape_1' }), x);
  x = apply(tf.layers.dropout({ rate: 1e-3, name: 'dropout' }), x);
  x = apply(tf.layers.conv2d({ name: 'conv_preds', filters: classes, kernelSize: 1, padding: 'same' }), x);
  x = apply(tf.layers.reshape({ targetShape: [classes], name: 'reshape_2' }), x);
  x = apply(tf.layers.activation({ activation: 'softmax', name: names.output }), x);
  const model = tf.model({ inputs: input, outputs: x, name: `mobilenet_${keras ? '' : 'v1_'}${alpha}_${inputSize}` });
  randomizeWeights(model, seed);
  await model.save(fileSaveHandler(dir));
  model.dispose();
  const middle = Math.max(1, Math.ceil(Math.min(blocks, BLOCKS.length) / 2));
  return {
    path: join(dir, 'model.json'),
    featureLayer: names.features,
    innerLayers: [`conv_pw_${middle}_relu`, `conv_dw_${middle}`],
    featureDim: channels,
  };
}
