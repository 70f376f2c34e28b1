import type { KernelConfig, KernelFunc, TensorInfo } from '@tensorflow/tfjs-core';
import type { Tf } from '@imgpipe/engines';
import { rotateFilter, swapLeadingAxes } from './heap-copies.js';
import { fullCorrelationInput, kernelTemps, wasmKernel } from './wasm-kernel-parts.js';
import type { ConvInfo, WasmBackend } from './wasm-kernel-types.js';

/**
 * Conv gradient kernels for TF.js WebAssembly, as convolutions its XNNPACK Conv2D runs, so that --fine-tune trains
 * conv backbones on wasm: it lacks Conv2DBackpropFilter, and its Conv2DBackpropInput is a plain loop (on ResNet50,
 * 8.3 s of a 12 s training step of 4 images; as a convolution about 1 s).
 *
 * Conv2DBackpropFilter (the filter gradient of conv2d):
 *
 *   dW[a, b, ci, co] = sum_{n,i,j} xpad[n, i*sh + a, j*sw + b, ci] * dy[n, i, j, co]
 *                    = conv2d(x^T [ci, H, W, n], dy^T [i, j, n, co], stride 1, dilation (sh, sw))[ci, a, b, co]
 *
 * with the forward conv's top/left padding, and the bottom/right padding (or a crop of x) that makes the output
 * exactly the filter's size.
 */

/** The input gradient: the full convolution of dy, zero-upsampled by the stride, with the filter rotated 180 degrees. */
const REPLACED = new WeakSet<object>();

export function registerWasmGradKernels(tf: Tf): void {
  const existing = tf.getKernel('Conv2DBackpropInput', 'wasm');
  if (existing && REPLACED.has(existing)) return;
  const transpose = wasmKernel(tf, 'Transpose');
  const slice = wasmKernel(tf, 'Slice');
  const conv2d = wasmKernel(tf, 'Conv2D');
  const convInfoOf = (inShape: number[], filterShape: number[], attrs: Record<string, unknown>): ConvInfo => {
    if (attrs.dataFormat === 'NCHW') throw new Error("wasm conv gradients support dataFormat 'NHWC' only");
    return (tf.backend_util.computeConv2DInfo as unknown as (...args: unknown[]) => ConvInfo)(
      inShape,
      filterShape,
      attrs.strides,
      1,
      attrs.pad,
      attrs.dimRoundingMode,
      false,
      'channelsLast',
    );
  };

  const conv2DBackpropInput: KernelFunc = ({ inputs, attrs, backend }) => {
    const { dy, filter } = inputs as { dy: TensorInfo; filter: TensorInfo };
    const inputShape = (attrs as unknown as { inputShape: [number, number, number, number] }).inputShape;
    const info = convInfoOf(inputShape, filter.shape, attrs as unknown as Record<string, unknown>);
    const { batchSize: n, inHeight: H, inWidth: W, inChannels: ci, outChannels: co } = info;
    const { filterHeight: fh, filterWidth: fw, strideHeight: sh, strideWidth: sw } = info;
    const { top, left } = info.padInfo;
    const t = kernelTemps(backend);
    try {
      const { input, pad } = fullCorrelationInput(tf, t, dy, { H, W, fh, fw, sh, sw, dh: 1, dw: 1, top, left }, 'Conv2DBackpropInput');
      const swapped = t.output([fh, fw, co, ci]);
      const heap = (info: TensorInfo) => (backend as WasmBackend).typedArrayFromHeap(info);
      rotateFilter(heap(filter), heap(swapped), fh, fw, ci, co);
      const out = t.run(conv2d, { x: input, filter: swapped }, { strides: [1, 1], dilations: [1, 1], pad, dataFormat: 'NHWC' });
      if (out.shape.join() !== [n, H, W, ci].join())
        throw new Error(`wasm Conv2DBackpropInput: got [${out.shape.join(', ')}], expected [${inputShape.join(', ')}]`);
      return t.keep(out);
    } finally {
      t.dispose();
    }
  };

  const conv2DBackpropFilter: KernelFunc = ({ inputs, attrs, backend }) => {
    const { x, dy } = inputs as { x: TensorInfo; dy: TensorInfo };
    const { strides, pad, dataFormat, dimRoundingMode, filterShape } = attrs as unknown as {
      strides: [number, number] | number;
      pad: 'valid' | 'same' | number | [[number, number], [number, number], [number, number], [number, number]];
      dataFormat: 'NHWC' | 'NCHW';
      dimRoundingMode?: 'floor' | 'round' | 'ceil';
      filterShape: [number, number, number, number];
    };
    if (dataFormat === 'NCHW') throw new Error("wasm Conv2DBackpropFilter supports dataFormat 'NHWC' only");
    const info = (tf.backend_util.computeConv2DInfo as unknown as (...args: unknown[]) => ConvInfo)(
      x.shape,
      filterShape,
      strides,
      1,
      pad,
      dimRoundingMode,
      false,
      'channelsLast',
    );
    const { inHeight: H, inWidth: W, inChannels: ci, batchSize: n, outHeight: oh, outWidth: ow, outChannels: co } = info;
    const { filterHeight: fh, filterWidth: fw, strideHeight: sh, strideWidth: sw } = info;
    const { top, left } = info.padInfo;
    const t = kernelTemps(backend);
    try {
      // Rows/columns of x the filter gradient reads: up to (fh - 1) + (oh - 1) * sh - top.
      const needH = fh + (oh - 1) * sh - top;
      const needW = fw + (ow - 1) * sw - left;
      let xt = t.run(transpose, { x }, { perm: [3, 1, 2, 0] }); // [ci, H, W, n]
      if (needH < H || needW < W) xt = t.run(slice, { x: xt }, { begin: [0, 0, 0, 0], size: [ci, Math.min(H, needH), Math.min(W, needW), n] });
      const heap = (info: TensorInfo) => (backend as unknown as WasmBackend).typedArrayFromHeap(info);
      const dyt = t.output([oh, ow, n, co]);
      swapLeadingAxes(heap(dy), heap(dyt), n, oh * ow, co);
      const padding = [
        [0, 0],
        [top, Math.max(0, needH - H)],
        [left, Math.max(0, needW - W)],
        [0, 0],
      ];
      const out = t.run(
        conv2d,
        { x: xt, filter: dyt },
        { strides: [1, 1], dilations: [sh, sw], pad: padding, dataFormat: 'NHWC', dimRoundingMode: undefined },
      );
      if (out.shape.join() !== [ci, fh, fw, co].join())
        throw new Error(`wasm Conv2DBackpropFilter: got [${out.shape.join(', ')}], expected [${[ci, fh, fw, co].join(', ')}]`);
      const result = t.keep(t.output(filterShape)); // [ci, fh, fw, co] -> [fh, fw, ci, co]
      swapLeadingAxes(heap(out), heap(result), ci, fh * fw, co);
      return result;
    } finally {
      t.dispose();
    }
  };
  if (!tf.getKernel('Conv2DBackpropFilter', 'wasm')) {
    tf.registerKernel({ kernelName: 'Conv2DBackpropFilter', backendName: 'wasm', kernelFunc: conv2DBackpropFilter } as KernelConfig);
  }
  if (existing) tf.unregisterKernel('Conv2DBackpropInput', 'wasm');
  const config = { kernelName: 'Conv2DBackpropInput', backendName: 'wasm', kernelFunc: conv2DBackpropInput } as KernelConfig;
  tf.registerKernel(config);
  REPLACED.add(tf.getKernel('Conv2DBackpropInput', 'wasm')!);
}
