import type { OnnxGraphBuilder } from './onnx-builder.js';
import type { LayerSpec } from './tfjs-layers-topology.js';
import type { NamedWeight } from './tfjs-weights.js';

/**
 * What the layer converters share. A value's `shape` is TF's, without the batch dimension; a value of rank 3
 * (a 4-D NHWC tensor in TF) is held as NCHW in the ONNX graph, every other rank in TF's own layout.
 */
export interface Value {
  name: string;
  shape: number[];
}

export interface ConvertContext {
  g: OnnxGraphBuilder;
  /** The layer's weight `suffix` (kernel, bias, gamma, ...); throws UnsupportedLayerError when it is missing. */
  weight(layer: LayerSpec, suffix: string): NamedWeight;
}

export type LayerConverter = (ctx: ConvertContext, layer: LayerSpec, inputs: Value[]) => Value;

/** A layer the converter cannot express in ONNX: the model runs on TF.js instead, and the log names it. */
export class UnsupportedLayerError extends Error {
  override name = 'UnsupportedLayerError';
  constructor(
    readonly layer: string,
    readonly className: string,
    readonly reason: string,
  ) {
    super(`layer '${layer}' (${className}) ${reason}`);
  }
}

export function unsupported(layer: LayerSpec, reason: string): never {
  throw new UnsupportedLayerError(layer.name, layer.className, reason);
}

/** A config value given as a number or a per-axis list (kernel_size: 3 or [3, 3]). */
export function pair(value: unknown, fallback: number): [number, number] {
  if (value === undefined || value === null) return [fallback, fallback];
  if (typeof value === 'number') return [value, value];
  const list = value as number[];
  return [list[0]!, list[1] ?? list[0]!];
}

/** NHWC -> NCHW of a rank-3 value's data layout, as ONNX perms. */
export const TO_NCHW = [0, 3, 1, 2];
export const TO_NHWC = [0, 2, 3, 1];

/** The value in TF's NHWC layout (a Transpose when it is held as NCHW). */
export function asTfLayout(ctx: ConvertContext, x: Value, base: string): string {
  if (x.shape.length !== 3) return x.name;
  return ctx.g.node('Transpose', [x.name], { base, attrs: { perm: TO_NHWC } });
}

/** A TF-layout tensor of this shape as a value (a Transpose to NCHW when it is rank 3). */
export function fromTfLayout(ctx: ConvertContext, name: string, shape: number[], base: string): Value {
  if (shape.length !== 3) return { name, shape };
  return { name: ctx.g.node('Transpose', [name], { base, attrs: { perm: TO_NCHW } }), shape };
}
