import { applyActivation } from './tfjs-onnx-activations.js';
import { pair, unsupported, type ConvertContext, type LayerConverter, type Value } from './tfjs-onnx-context.js';
import type { LayerSpec } from './tfjs-layers-topology.js';

/** Convolutions, pooling and padding: NHWC layers on NCHW values, with TF's padding computed into explicit pads. */

interface Window {
  kernel: [number, number];
  strides: [number, number];
  dilations: [number, number];
  padding: string;
}

/**
 * Output size and pads [top, left, bottom, right] as TF computes them: 'valid' pads nothing; 'same' gives
 * ceil(in / stride) outputs and pads the total needed, the extra pixel (odd totals) at the bottom/right.
 */
function windowPads(layer: LayerSpec, input: [number, number], w: Window): { out: [number, number]; pads: number[] } {
  const out: number[] = [];
  const before: number[] = [];
  const after: number[] = [];
  for (let axis = 0; axis < 2; axis++) {
    const size = input[axis]!;
    const effective = (w.kernel[axis]! - 1) * w.dilations[axis]! + 1;
    const stride = w.strides[axis]!;
    if (w.padding === 'same') {
      const n = Math.ceil(size / stride);
      const total = Math.max((n - 1) * stride + effective - size, 0);
      out.push(n);
      before.push(Math.floor(total / 2));
      after.push(total - Math.floor(total / 2));
    } else if (w.padding === 'valid') {
      const n = Math.floor((size - effective) / stride) + 1;
      if (n < 1) unsupported(layer, `has a ${w.kernel.join('x')} window larger than its ${input.join('x')} input`);
      out.push(n);
      before.push(0);
      after.push(0);
    } else {
      unsupported(layer, `has padding '${w.padding}'`);
    }
  }
  return { out: out as [number, number], pads: [...before, ...after] };
}

function spatialInput(layer: LayerSpec, inputs: Value[]): Value {
  const config = layer.config;
  if (config.data_format !== undefined && config.data_format !== null && config.data_format !== 'channels_last') {
    unsupported(layer, `has data_format '${String(config.data_format)}' (only channels_last converts)`);
  }
  if (inputs.length !== 1 || inputs[0]!.shape.length !== 3) unsupported(layer, 'expects one 4-D input');
  return inputs[0]!;
}

function windowOf(layer: LayerSpec, kernelKey: string, stridesDefault?: [number, number]): Window {
  const c = layer.config;
  const kernel = pair(c[kernelKey], 1);
  const strides = c.strides === null || c.strides === undefined ? (stridesDefault ?? [1, 1]) : pair(c.strides, 1);
  return { kernel, strides, dilations: pair(c.dilation_rate, 1), padding: String(c.padding ?? 'valid') };
}

/** HWIO (TF's conv kernel) -> OIHW (ONNX's). */
function hwioToOihw(kernel: Float32Array, [kh, kw, cin, cout]: number[]): Float32Array {
  const out = new Float32Array(kernel.length);
  for (let h = 0; h < kh!; h++)
    for (let x = 0; x < kw!; x++)
      for (let i = 0; i < cin!; i++)
        for (let o = 0; o < cout!; o++) out[((o * cin! + i) * kh! + h) * kw! + x] = kernel[((h * kw! + x) * cin! + i) * cout! + o]!;
  return out;
}

/** One ONNX Conv: kernel given HWIO (TF's shape), output channels out. */
function conv(
  ctx: ConvertContext,
  layer: LayerSpec,
  x: Value,
  kernel: { shape: number[]; data: Float32Array },
  w: Window,
  group: number,
  bias?: Float32Array,
): Value {
  const { out, pads } = windowPads(layer, [x.shape[0]!, x.shape[1]!], w);
  const [kh, kw, cin, cout] = kernel.shape as [number, number, number, number];
  const weight = ctx.g.floats(`${layer.name}:weight`, [cout, cin, kh, kw], hwioToOihw(kernel.data, kernel.shape));
  const inputs = [x.name, weight];
  if (bias) inputs.push(ctx.g.floats(`${layer.name}:bias`, [cout], bias));
  const attrs = { kernel_shape: [kh, kw], strides: w.strides, dilations: w.dilations, pads, group };
  return { name: ctx.g.node('Conv', inputs, { base: layer.name, attrs }), shape: [...out, cout] };
}

function useBias(layer: LayerSpec): boolean {
  return layer.config.use_bias !== false;
}

export const conv2d: LayerConverter = (ctx, layer, inputs) => {
  const x = spatialInput(layer, inputs);
  const kernel = ctx.weight(layer, 'kernel');
  const groups = Number(layer.config.groups ?? 1);
  if (kernel.shape[2]! * groups !== x.shape[2]) unsupported(layer, `has a kernel for ${kernel.shape[2]} input channels, its input has ${x.shape[2]}`);
  const bias = useBias(layer) ? ctx.weight(layer, 'bias').data : undefined;
  return applyActivation(ctx, layer, conv(ctx, layer, x, kernel, windowOf(layer, 'kernel_size'), groups, bias));
};

/** A depthwise kernel [kh, kw, cin, multiplier] as a grouped conv's HWIO kernel [kh, kw, 1, cin * multiplier]. */
function depthwiseAsGrouped(kernel: { shape: number[]; data: Float32Array }): { shape: number[]; data: Float32Array } {
  const [kh, kw, cin, mult] = kernel.shape as [number, number, number, number];
  return { shape: [kh, kw, 1, cin * mult], data: kernel.data };
}

function depthwise(ctx: ConvertContext, layer: LayerSpec, x: Value, bias?: Float32Array): Value {
  const kernel = ctx.weight(layer, 'depthwise_kernel');
  if (kernel.shape[2] !== x.shape[2]) unsupported(layer, `has a kernel for ${kernel.shape[2]} channels, its input has ${x.shape[2]}`);
  return conv(ctx, layer, x, depthwiseAsGrouped(kernel), windowOf(layer, 'kernel_size'), x.shape[2]!, bias);
}

export const depthwiseConv2d: LayerConverter = (ctx, layer, inputs) => {
  const x = spatialInput(layer, inputs);
  if (pair(layer.config.dilation_rate, 1).some((d) => d !== 1)) {
    unsupported(layer, 'has a dilation_rate, which TF.js ignores in this layer: it stays on TF.js to keep the features TF.js gives');
  }
  const bias = useBias(layer) ? ctx.weight(layer, 'bias').data : undefined;
  return applyActivation(ctx, layer, depthwise(ctx, layer, x, bias));
};

export const separableConv2d: LayerConverter = (ctx, layer, inputs) => {
  const x = spatialInput(layer, inputs);
  const mid = depthwise(ctx, layer, x);
  const pointwise = ctx.weight(layer, 'pointwise_kernel');
  const bias = useBias(layer) ? ctx.weight(layer, 'bias').data : undefined;
  const one: Window = { kernel: [1, 1], strides: [1, 1], dilations: [1, 1], padding: 'valid' };
  return applyActivation(ctx, layer, conv(ctx, layer, mid, pointwise, one, 1, bias));
};

function pool(op: 'MaxPool' | 'AveragePool'): LayerConverter {
  return (ctx, layer, inputs) => {
    const x = spatialInput(layer, inputs);
    const kernel = pair(layer.config.pool_size, 2);
    const w: Window = { ...windowOf(layer, 'pool_size', kernel), kernel, dilations: [1, 1] };
    const { out, pads } = windowPads(layer, [x.shape[0]!, x.shape[1]!], w);
    // TF's 'same' average excludes the padding from the count, as ONNX's count_include_pad=0 does.
    const attrs = { kernel_shape: kernel, strides: w.strides, pads, ...(op === 'AveragePool' ? { count_include_pad: 0 } : {}) };
    return { name: ctx.g.node(op, [x.name], { base: layer.name, attrs }), shape: [...out, x.shape[2]!] };
  };
}
export const maxPooling2d = pool('MaxPool');
export const averagePooling2d = pool('AveragePool');

export const globalAveragePooling2d: LayerConverter = (ctx, layer, inputs) => {
  const x = spatialInput(layer, inputs);
  const pooled = ctx.g.node('GlobalAveragePool', [x.name], { base: layer.name });
  const channels = x.shape[2]!;
  if (layer.config.keepdims === true) return { name: pooled, shape: [1, 1, channels] };
  return { name: ctx.g.node('Flatten', [pooled], { base: layer.name, attrs: { axis: 1 } }), shape: [channels] };
};

/** padding: n, [h, w] or [[top, bottom], [left, right]]. */
export const zeroPadding2d: LayerConverter = (ctx, layer, inputs) => {
  const x = spatialInput(layer, inputs);
  const p = layer.config.padding ?? 1;
  const [[top, bottom], [left, right]] =
    typeof p === 'number'
      ? [
          [p, p],
          [p, p],
        ]
      : ((p as unknown[]).map((v) => (typeof v === 'number' ? [v, v] : (v as number[]))) as [number[], number[]]);
  const pads = ctx.g.int64s(`${layer.name}:pads`, [0, 0, top!, left!, 0, 0, bottom!, right!]);
  const name = ctx.g.node('Pad', [x.name, pads], { base: layer.name });
  return { name, shape: [x.shape[0]! + top! + bottom!, x.shape[1]! + left! + right!, x.shape[2]!] };
};
