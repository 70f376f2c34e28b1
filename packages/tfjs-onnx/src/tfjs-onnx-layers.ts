import { activationLayer, applyActivation, reluLayer } from './tfjs-onnx-activations.js';
import { asTfLayout, fromTfLayout, TO_NCHW, unsupported, type LayerConverter, type Value } from './tfjs-onnx-context.js';
import { averagePooling2d, conv2d, depthwiseConv2d, globalAveragePooling2d, maxPooling2d, separableConv2d, zeroPadding2d } from './tfjs-onnx-conv.js';
import type { LayerSpec } from './tfjs-layers-topology.js';

/** Normalisation, merges, shape layers and Dense; and the table of every layer class that converts. */

function single(layer: LayerSpec, inputs: Value[]): Value {
  if (inputs.length !== 1) unsupported(layer, `expects one input, got ${inputs.length}`);
  return inputs[0]!;
}

/** BatchNormalization over the last (channel) axis, with its moving statistics (inference). */
const batchNormalization: LayerConverter = (ctx, layer, inputs) => {
  const x = single(layer, inputs);
  const rank = x.shape.length + 1;
  const axis = [layer.config.axis ?? -1].flat()[0] as number;
  if ((axis < 0 ? axis + rank : axis) !== rank - 1) unsupported(layer, `normalises axis ${axis}, not the channels`);
  if (rank !== 2 && rank !== 4) unsupported(layer, `has a ${rank}-D input (2-D and 4-D convert)`);
  const channels = x.shape[x.shape.length - 1]!;
  const mean = ctx.weight(layer, 'moving_mean').data;
  const variance = ctx.weight(layer, 'moving_variance').data;
  const gamma = layer.config.scale === false ? new Float32Array(channels).fill(1) : ctx.weight(layer, 'gamma').data;
  const beta = layer.config.center === false ? new Float32Array(channels) : ctx.weight(layer, 'beta').data;
  const { g } = ctx;
  const params = [g.floats(`${layer.name}:gamma`, [channels], gamma), g.floats(`${layer.name}:beta`, [channels], beta)];
  params.push(g.floats(`${layer.name}:mean`, [channels], mean), g.floats(`${layer.name}:variance`, [channels], variance));
  const epsilon = Number(layer.config.epsilon ?? 1e-3);
  return { name: g.node('BatchNormalization', [x.name, ...params], { base: layer.name, attrs: { epsilon: { float: epsilon } } }), shape: x.shape };
};

/** Add and Multiply of same-rank inputs (broadcasting as TF does within a rank). */
function elementwise(op: 'Add' | 'Mul'): LayerConverter {
  return (ctx, layer, inputs) => {
    if (inputs.length < 2) unsupported(layer, 'expects at least two inputs');
    const rank = inputs[0]!.shape.length;
    if (inputs.some((v) => v.shape.length !== rank)) unsupported(layer, 'merges inputs of different ranks');
    let name = inputs[0]!.name;
    for (const v of inputs.slice(1)) name = ctx.g.node(op, [name, v.name], { base: layer.name });
    const shape = inputs[0]!.shape.map((_, i) => Math.max(...inputs.map((v) => v.shape[i]!)));
    return { name, shape };
  };
}

const concatenate: LayerConverter = (ctx, layer, inputs) => {
  const rank = inputs[0]!.shape.length + 1;
  if (inputs.some((v) => v.shape.length + 1 !== rank)) unsupported(layer, 'concatenates inputs of different ranks');
  const tfAxis =
    ((layer.config.axis as number | undefined) ?? -1) < 0 ? ((layer.config.axis as number | undefined) ?? -1) + rank : (layer.config.axis as number);
  if (tfAxis === 0) unsupported(layer, 'concatenates along the batch axis');
  const axis = rank === 4 ? TO_NCHW.indexOf(tfAxis) : tfAxis;
  const shape = [...inputs[0]!.shape];
  shape[tfAxis - 1] = inputs.reduce((sum, v) => sum + v.shape[tfAxis - 1]!, 0);
  return {
    name: ctx.g.node(
      'Concat',
      inputs.map((v) => v.name),
      { base: layer.name, attrs: { axis } },
    ),
    shape,
  };
};

/** Flatten in TF's element order: NCHW values go back to NHWC first. */
const flatten: LayerConverter = (ctx, layer, inputs) => {
  const x = single(layer, inputs);
  const flat = ctx.g.node('Flatten', [asTfLayout(ctx, x, layer.name)], { base: layer.name, attrs: { axis: 1 } });
  return { name: flat, shape: [x.shape.reduce((a, b) => a * b, 1)] };
};

const reshape: LayerConverter = (ctx, layer, inputs) => {
  const x = single(layer, inputs);
  const target = ((layer.config.target_shape ?? []) as (number | null)[]).map((d) => d ?? -1);
  const total = x.shape.reduce((a, b) => a * b, 1);
  const known = target.filter((d) => d !== -1).reduce((a, b) => a * b, 1);
  const shape = target.map((d) => (d === -1 ? total / known : d));
  if (shape.reduce((a, b) => a * b, 1) !== total || !shape.every(Number.isInteger)) unsupported(layer, `cannot reshape [${x.shape}] to [${target}]`);
  const dims = ctx.g.int64s(`${layer.name}:shape`, [-1, ...shape]);
  const name = ctx.g.node('Reshape', [asTfLayout(ctx, x, layer.name), dims], { base: layer.name });
  return fromTfLayout(ctx, name, shape, layer.name);
};

/** Dense on the last axis: Gemm for [batch, in]; MatMul + Add in TF's layout for higher ranks. */
const dense: LayerConverter = (ctx, layer, inputs) => {
  const x = single(layer, inputs);
  const kernel = ctx.weight(layer, 'kernel');
  const [input, units] = kernel.shape as [number, number];
  if (x.shape[x.shape.length - 1] !== input) unsupported(layer, `has a kernel for ${input} inputs, its input has ${x.shape[x.shape.length - 1]}`);
  const { g } = ctx;
  const w = g.floats(`${layer.name}:kernel`, [input, units], kernel.data);
  const bias = layer.config.use_bias === false ? undefined : g.floats(`${layer.name}:bias`, [units], ctx.weight(layer, 'bias').data);
  const shape = [...x.shape.slice(0, -1), units];
  let out: Value;
  if (x.shape.length === 1) {
    out = { name: g.node('Gemm', bias ? [x.name, w, bias] : [x.name, w], { base: layer.name }), shape };
  } else {
    const product = g.node('MatMul', [asTfLayout(ctx, x, layer.name), w], { base: layer.name });
    out = fromTfLayout(ctx, bias ? g.node('Add', [product, bias], { base: layer.name }) : product, shape, layer.name);
  }
  return applyActivation(ctx, layer, out);
};

const identity: LayerConverter = (_ctx, layer, inputs) => single(layer, inputs);

/** Every layer class that converts (InputLayer is the graph input). */
export const LAYER_CONVERTERS: Record<string, LayerConverter> = {
  Conv2D: conv2d,
  DepthwiseConv2D: depthwiseConv2d,
  SeparableConv2D: separableConv2d,
  BatchNormalization: batchNormalization,
  Activation: activationLayer,
  ReLU: reluLayer,
  Add: elementwise('Add'),
  Multiply: elementwise('Mul'),
  Concatenate: concatenate,
  ZeroPadding2D: zeroPadding2d,
  MaxPooling2D: maxPooling2d,
  AveragePooling2D: averagePooling2d,
  GlobalAveragePooling2D: globalAveragePooling2d,
  Reshape: reshape,
  Flatten: flatten,
  Dropout: identity,
  Dense: dense,
};
