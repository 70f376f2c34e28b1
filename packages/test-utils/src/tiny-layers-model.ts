import { join } from 'node:path';
import { writeFileAtomic, writeJsonAtomic } from '@imgpipe/kit';
import type { TinyConvWeights } from './tiny-graph-model.js';

/** The version whose save format these files copy (the tfjs-layers that engines installs). */
const TFJS_LAYERS_VERSION = '4.22.0';

const initializers = {
  kernel_initializer: { class_name: 'VarianceScaling', config: { scale: 1, mode: 'fan_avg', distribution: 'normal', seed: null } },
  bias_initializer: { class_name: 'Zeros', config: {} },
};
const inbound = (from: string) => [[[from, 0, 0, {}]]];

function conv2d(name: string, from: string, filters: number, strides: number, padding: 'same' | 'valid') {
  return {
    name,
    class_name: 'Conv2D',
    config: {
      filters,
      kernel_initializer: initializers.kernel_initializer,
      kernel_regularizer: null,
      kernel_constraint: null,
      kernel_size: [3, 3],
      strides: [strides, strides],
      padding,
      data_format: 'channels_last',
      dilation_rate: [1, 1],
      activation: 'relu',
      use_bias: true,
      bias_initializer: initializers.bias_initializer,
      bias_regularizer: null,
      activity_regularizer: null,
      bias_constraint: null,
      name,
      trainable: true,
    },
    inbound_nodes: inbound(from),
  };
}

/**
 * The tiny conv net (tiny-graph-model.ts) as a TF.js layers model, written by hand as tfjs-layers' model.save
 * through engines' fileSaveHandler writes it: model.json (topology, weight manifest) and weights.bin (float32, in
 * the manifest's order), so that test-utils needs no TF.js.
 */
export async function writeTinyLayersModel(dir: string, inputSize: number, w: TinyConvWeights): Promise<void> {
  const [c1, c2] = w.channels;
  const layers = [
    {
      name: 'input',
      class_name: 'InputLayer',
      config: { batch_input_shape: [null, inputSize, inputSize, 3], dtype: 'float32', sparse: false, name: 'input' },
      inbound_nodes: [],
    },
    conv2d('conv1', 'input', c1, 1, 'same'),
    conv2d('conv2', 'conv1', c2, 2, 'valid'),
    {
      name: 'features',
      class_name: 'GlobalAveragePooling2D',
      config: { data_format: 'channels_last', name: 'features', trainable: true },
      inbound_nodes: inbound('conv2'),
    },
    {
      name: 'logits',
      class_name: 'Dense',
      config: {
        units: w.classes,
        activation: 'linear',
        use_bias: true,
        kernel_initializer: initializers.kernel_initializer,
        bias_initializer: initializers.bias_initializer,
        kernel_regularizer: null,
        bias_regularizer: null,
        activity_regularizer: null,
        kernel_constraint: null,
        bias_constraint: null,
        name: 'logits',
        trainable: true,
      },
      inbound_nodes: inbound('features'),
    },
  ];
  const weights: [string, number[], Float32Array][] = [
    ['conv1/kernel', [3, 3, 3, c1], w.conv1.kernel],
    ['conv1/bias', [c1], w.conv1.bias],
    ['conv2/kernel', [3, 3, c1, c2], w.conv2.kernel],
    ['conv2/bias', [c2], w.conv2.bias],
    ['logits/kernel', [c2, w.classes], w.dense.kernel],
    ['logits/bias', [w.classes], w.dense.bias],
  ];
  await writeFileAtomic(
    join(dir, 'weights.bin'),
    Buffer.concat(weights.map(([, , data]) => new Uint8Array(data.buffer, data.byteOffset, data.byteLength))),
  );
  await writeJsonAtomic(join(dir, 'model.json'), {
    format: 'layers-model',
    generatedBy: `TensorFlow.js tfjs-layers v${TFJS_LAYERS_VERSION}`,
    convertedBy: null,
    modelTopology: {
      class_name: 'Model',
      config: { name: 'tiny_conv', layers, input_layers: [['input', 0, 0]], output_layers: [['logits', 0, 0]] },
      keras_version: `tfjs-layers ${TFJS_LAYERS_VERSION}`,
      backend: 'tensor_flow.js',
    },
    weightsManifest: [{ paths: ['weights.bin'], weights: weights.map(([name, shape]) => ({ name, shape, dtype: 'float32' })) }],
  });
}
