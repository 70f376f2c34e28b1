import type { Tensor } from '@tensorflow/tfjs-core';
import type { Tf } from '@imgpipe/engines';
import { relu6, trainingBatchNorm } from './wasm-training-kernels.js';

type LayersModel = Awaited<ReturnType<Tf['loadLayersModel']>>;
type Layer = LayersModel['layers'][number];
type Call = (inputs: Tensor | Tensor[], kwargs: Record<string, unknown>) => Tensor | Tensor[];
type LayerVariable = { read(): Tensor; write(value: Tensor): void; trainable: boolean };
type BatchNormLayer = Layer & {
  axis: number;
  epsilon: number;
  momentum: number;
  gamma?: LayerVariable;
  beta?: LayerVariable;
  movingMean: LayerVariable;
  movingVariance: LayerVariable;
};
type ActivationLike = { getClassName(): string; apply(x: Tensor): Tensor };
type ReluLayer = Layer & { maxValue?: number | null };
type ActivationLayer = Layer & { activation: ActivationLike };
type ConvLayer = Layer & {
  rank: number;
  dataFormat: string;
  strides: number[];
  padding: 'same' | 'valid';
  dilationRate: number[];
  kernel: LayerVariable;
  bias?: LayerVariable | null;
  activation: ActivationLike;
};

/** Set on a BatchNormalization layer by freezeBatchNormStatistics (fuseTrainingLayers then leaves it alone). */
const FROZEN_STATISTICS = Symbol('imgpipe.frozenStatistics');

/** What fuseTrainingLayers changed, by layer class. */
type FusedLayers = { batchNorm: number; relu6: number; unfusedConv: number };

const one = (inputs: Tensor | Tensor[]) => (Array.isArray(inputs) ? inputs[0]! : inputs);

/**
 * Points a layers model's training steps at fewer, faster kernels on TF.js WebAssembly (wasm-training-kernels.ts),
 * layer by layer, by replacing each layer object's call (tfjs-layers has no other hook; the model's topology and
 * what it saves do not change, and inference calls go to the original):
 *
 * - BatchNormalization over the last axis with both gamma and beta, in training: one kernel each way, and the same
 *   moving-average updates as tfjs-layers;
 * - ReLU with maxValue 6 and Activation('relu6'): one kernel each way;
 * - a Conv2D (channels last) that is frozen, or whose input no trainable weight feeds (the first conv on the images):
 *   an unfused conv2d. TF.js's fused conv2d computes the gradients of both its filter and its input on every backward
 *   pass, needed or not: frozen filters' were a third of the convolution time of --fine-tune bn on MobileNet, and
 *   the first conv's input gradient 4% of a --fine-tune all step.
 *
 * For the wasm backend only (where the kernels are registered); call it after setting which layers train.
 */
export function fuseTrainingLayers(tf: Tf, model: LayersModel): FusedLayers {
  const fused: FusedLayers = { batchNorm: 0, relu6: 0, unfusedConv: 0 };
  if (tf.getBackend() !== 'wasm') return fused;
  const trainableFeeds = trainableUpstream();
  for (const layer of model.layers) {
    const call = replacementCall(tf, layer, trainableFeeds);
    if (!call) continue;
    (layer as unknown as { call: Call }).call = call.call;
    fused[call.kind] += 1;
  }
  return fused;
}

function replacementCall(tf: Tf, layer: Layer, trainableFeeds: (layer: Layer) => boolean): { kind: keyof FusedLayers; call: Call } | undefined {
  const original = (layer as unknown as { call: Call }).call.bind(layer);
  switch (layer.getClassName()) {
    case 'BatchNormalization': {
      const bn = layer as BatchNormLayer;
      const rank = (bn.inputSpec?.[0] as { ndim?: number } | undefined)?.ndim;
      const lastAxis = bn.axis === -1 || (rank !== undefined && bn.axis === rank - 1);
      if (!lastAxis || !bn.gamma || !bn.beta || FROZEN_STATISTICS in bn) return undefined;
      return {
        kind: 'batchNorm',
        call: (inputs, kwargs) => (kwargs?.training ? batchNormTrainingCall(tf, bn, one(inputs)) : original(inputs, kwargs)),
      };
    }
    case 'ReLU':
      if ((layer as ReluLayer).maxValue !== 6) return undefined;
      return { kind: 'relu6', call: (inputs) => relu6(tf, one(inputs)) };
    case 'Activation':
      if ((layer as ActivationLayer).activation.getClassName() !== 'relu6') return undefined;
      return { kind: 'relu6', call: (inputs) => relu6(tf, one(inputs)) };
    case 'Conv2D': {
      const conv = layer as ConvLayer;
      if (conv.rank !== 2 || conv.dataFormat !== 'channelsLast') return undefined;
      if (conv.trainable && trainableFeeds(conv)) return undefined;
      return { kind: 'unfusedConv', call: (inputs) => unfusedConvCall(tf, conv, one(inputs)) };
    }
    default:
      return undefined;
  }
}

/**
 * Every BatchNormalization layer of a layers model normalises with its moving statistics in training too, and never
 * updates them: inference mode, the usual recipe for fine-tuning a pretrained backbone (small batches' statistics
 * replace ImageNet's with noisy ones, and depend on how a batch is split across workers). gamma and beta still train
 * when their layer is trainable: y = x * gamma / sqrt(variance + epsilon) + (beta - mean * gamma / sqrt(...)).
 * Returns the number of layers changed; call it before fuseTrainingLayers.
 */
export function freezeBatchNormStatistics(tf: Tf, model: LayersModel): number {
  let count = 0;
  for (const layer of model.layers) {
    if (layer.getClassName() !== 'BatchNormalization' || FROZEN_STATISTICS in layer) continue;
    const bn = layer as BatchNormLayer;
    const original = (layer as unknown as { call: Call }).call.bind(layer);
    const rank = (bn.inputSpec?.[0] as { ndim?: number } | undefined)?.ndim;
    const lastAxis = bn.axis === -1 || (rank !== undefined && bn.axis === rank - 1);
    (layer as unknown as { call: Call }).call =
      lastAxis && bn.gamma && bn.beta
        ? (inputs) => inferenceBatchNormCall(tf, bn, one(inputs))
        : (inputs, kwargs) => original(inputs, { ...kwargs, training: false });
    Object.defineProperty(layer, FROZEN_STATISTICS, { value: true });
    count += 1;
  }
  return count;
}

function inferenceBatchNormCall(tf: Tf, layer: BatchNormLayer, x: Tensor): Tensor {
  return tf.tidy(() => {
    const scale = tf.mul(layer.gamma!.read(), tf.rsqrt(tf.add(layer.movingVariance.read(), layer.epsilon)));
    const shift = tf.sub(layer.beta!.read(), tf.mul(layer.movingMean.read(), scale));
    return tf.add(tf.mul(x, scale), shift);
  });
}

/** Whether any trainable weight lies upstream of a layer's inputs (memoised over the model's graph). */
function trainableUpstream(): (layer: Layer) => boolean {
  const known = new Map<Layer, boolean>();
  const feeds = (layer: Layer): boolean => {
    let answer = known.get(layer);
    if (answer === undefined) {
      const upstream = layer.inboundNodes.flatMap((node) => node.inboundLayers);
      answer = upstream.some((up) => up.trainableWeights.length > 0 || feeds(up));
      known.set(layer, answer);
    }
    return answer;
  };
  return feeds;
}

function batchNormTrainingCall(tf: Tf, layer: BatchNormLayer, x: Tensor): Tensor {
  return tf.tidy(() => {
    const [y, mean, variance] = trainingBatchNorm(tf, x, layer.gamma!.read(), layer.beta!.read(), layer.epsilon);
    // As tfjs-layers: moving = moving - (moving - batch) * (1 - momentum).
    for (const [variable, value] of [
      [layer.movingMean, mean],
      [layer.movingVariance, variance],
    ] as const) {
      tf.tidy(() => {
        const moving = variable.read();
        variable.write(tf.sub(moving, tf.mul(tf.sub(moving, value), 1 - layer.momentum)));
      });
    }
    return y;
  });
}

function unfusedConvCall(tf: Tf, layer: ConvLayer, x: Tensor): Tensor {
  return tf.tidy(() => {
    let y: Tensor = tf.conv2d(
      x as never,
      layer.kernel.read() as never,
      layer.strides as [number, number],
      layer.padding,
      'NHWC',
      layer.dilationRate as [number, number],
    );
    if (layer.bias) y = tf.add(y, layer.bias.read());
    const activation = layer.activation.getClassName();
    if (activation === 'relu6') return relu6(tf, y);
    return activation === 'linear' ? y : layer.activation.apply(y);
  });
}
