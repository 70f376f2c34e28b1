import { unsupported, type ConvertContext, type LayerConverter, type Value } from './tfjs-onnx-context.js';
import type { LayerSpec } from './tfjs-layers-topology.js';

/** Activations (a layer's `activation`, the Activation and ReLU layers) as ONNX ops. */

/** The activation's name in snake case ('hardSigmoid' and 'hard_sigmoid' alike); a Keras 3 dict gives its class name. */
export function activationName(value: unknown): string {
  let name: unknown = value ?? 'linear';
  if (typeof name === 'object') name = (name as { config?: unknown; class_name?: unknown }).config ?? (name as { class_name?: unknown }).class_name;
  if (typeof name === 'object' && name !== null) name = (name as { name?: unknown }).name;
  return String(name)
    .replace(/([a-z0-9])([A-Z])/g, '$1_$2')
    .toLowerCase();
}

export const ACTIVATIONS = ['linear', 'relu', 'relu6', 'sigmoid', 'tanh', 'swish', 'hard_swish', 'hard_sigmoid', 'softmax'] as const;

function clip(ctx: ConvertContext, x: string, base: string, min: number, max: number): string {
  return ctx.g.node('Clip', [x, ctx.g.scalar(`${base}:min`, min), ctx.g.scalar(`${base}:max`, max)], { base });
}

function activation(ctx: ConvertContext, layer: LayerSpec, x: Value, name: string): Value {
  const { g } = ctx;
  const base = layer.name;
  const out = (value: string): Value => ({ name: value, shape: x.shape });
  switch (name) {
    case 'linear':
      return x;
    case 'relu':
      return out(g.node('Relu', [x.name], { base }));
    case 'relu6':
      return out(clip(ctx, x.name, base, 0, 6));
    case 'sigmoid':
      return out(g.node('Sigmoid', [x.name], { base }));
    case 'tanh':
      return out(g.node('Tanh', [x.name], { base }));
    case 'swish':
      return out(g.node('Mul', [x.name, g.node('Sigmoid', [x.name], { base })], { base }));
    case 'hard_swish': // Keras: x * relu6(x + 3) / 6
      return out(
        g.node('Mul', [x.name, g.node('HardSigmoid', [x.name], { base, attrs: { alpha: { float: 1 / 6 }, beta: { float: 0.5 } } })], { base }),
      );
    case 'hard_sigmoid': // TF.js: clip(0.2 x + 0.5, 0, 1)
      return out(g.node('HardSigmoid', [x.name], { base, attrs: { alpha: { float: 0.2 }, beta: { float: 0.5 } } }));
    case 'softmax': // over TF's last axis: the channels, axis 1 of an NCHW value
      return out(g.node('Softmax', [x.name], { base, attrs: { axis: x.shape.length === 3 ? 1 : -1 } }));
    default:
      return unsupported(layer, `has activation '${name}'`);
  }
}

export function applyActivation(ctx: ConvertContext, layer: LayerSpec, x: Value): Value {
  return activation(ctx, layer, x, activationName(layer.config.activation));
}

function single(layer: LayerSpec, inputs: Value[]): Value {
  if (inputs.length !== 1) unsupported(layer, `expects one input, got ${inputs.length}`);
  return inputs[0]!;
}

export const activationLayer: LayerConverter = (ctx, layer, inputs) => applyActivation(ctx, layer, single(layer, inputs));

/** ReLU(max_value): relu, or a clip at max_value (6: relu6); negative_slope and threshold other than 0 do not convert. */
export const reluLayer: LayerConverter = (ctx, layer, inputs) => {
  const x = single(layer, inputs);
  const {
    max_value: max,
    negative_slope: slope,
    threshold,
  } = layer.config as { max_value?: number | null; negative_slope?: number; threshold?: number };
  if ((slope ?? 0) !== 0 || (threshold ?? 0) !== 0) unsupported(layer, 'has a negative_slope or threshold other than 0');
  if (max === null || max === undefined) return activation(ctx, layer, x, 'relu');
  return { name: clip(ctx, x.name, layer.name, 0, max), shape: x.shape };
};
