import type { KernelConfig, KernelFunc, TensorInfo } from '@tensorflow/tfjs-core';
import type { Tf } from './tf-type.js';
import { rotateFilter, swapLeadingAxes } from './heap-copies.js';
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
  const kernel = (name: string): KernelFunc => {
    const config = tf.getKernel(name, 'wasm');
    if (!config) throw new Error(`the TF.js wasm backend has no ${name} kernel`);
    return config.kernelFunc;
  };
  const transpose = kernel('Transpose');
  const slice = kernel('Slice');
  const conv2d = kernel('Conv2D');
  const reshape = kernel('Reshape');
  const padV2 = kernel('PadV2');
  type Temps = {
    run(f: KernelFunc, ins: Record<string, TensorInfo>, at: Record<string, unknown>): TensorInfo;
    /** A new float32 tensor to fill from JavaScript. */
    output(shape: number[]): TensorInfo;
    dispose(): void;
  };
  const temps = (backend: unknown): Temps => {
    const made: TensorInfo[] = [];
    return {
      run(f, ins, at) {
        const out = f({ inputs: ins, attrs: at as never, backend: backend as never }) as TensorInfo;
        made.push(out);
        return out;
      },
      output(shape) {
        const out = (backend as WasmBackend).makeOutput(shape, 'float32');
        made.push(out);
        return out;
      },
      dispose() {
        for (const t of made) (backend as WasmBackend).disposeData(t.dataId);
      },
    };
  };
  const convInfoOf = (inShape: number[], filterShape: number[], attrs: Record<string, unknown>): ConvInfo => {
    if (attrs.dataFormat === 'NCHW') throw new Error("wasm conv gradients support dataFormat 'NHWC' only");
    return (tf.backend_util.computeConv2DInfo as unknown as (...args: unknown[]) => ConvInfo)(
      inShape, filterShape, attrs.strides, 1, attrs.pad, attrs.dimRoundingMode, false, 'channelsLast',
    );
  };

  const conv2DBackpropInput: KernelFunc = ({ inputs, attrs, backend }) => {
    const { dy, filter } = inputs as { dy: TensorInfo; filter: TensorInfo };
    const inputShape = (attrs as unknown as { inputShape: [number, number, number, number] }).inputShape;
    const info = convInfoOf(inputShape, filter.shape, attrs as unknown as Record<string, unknown>);
    const { batchSize: n, inHeight: H, inWidth: W, inChannels: ci, outHeight: oh, outWidth: ow, outChannels: co } = info;
    const { filterHeight: fh, filterWidth: fw, strideHeight: sh, strideWidth: sw } = info;
    const { top, left } = info.padInfo;
    const t = temps(backend);
    try {
      // dy with (stride - 1) zeros after each row and column: [n, oh * sh, ow * sw, co].
      let up = dy;
      if (sh > 1 || sw > 1) {
        const six = t.run(reshape, { x: dy }, { shape: [n, oh, 1, ow, 1, co] });
        const padded = t.run(padV2, { x: six }, { paddings: [[0, 0], [0, 0], [0, sh - 1], [0, 0], [0, sw - 1], [0, 0]], constantValue: 0 });
        up = t.run(reshape, { x: padded }, { shape: [n, oh * sh, ow * sw, co] });
      }
      const padTop = fh - 1 - top;
      const padLeft = fw - 1 - left;
      const padBottom = H + fh - 1 - padTop - oh * sh;
      const padRight = W + fw - 1 - padLeft - ow * sw;
      if (padTop < 0 || padLeft < 0) throw new Error(`wasm Conv2DBackpropInput: padding ${top}/${left} is larger than the filter`);
      if (padBottom < 0 || padRight < 0) {
        up = t.run(slice, { x: up }, { begin: [0, 0, 0, 0], size: [n, oh * sh + Math.min(0, padBottom), ow * sw + Math.min(0, padRight), co] });
      }
      const swapped = t.output([fh, fw, co, ci]);
      const heap = (info: TensorInfo) => (backend as WasmBackend).typedArrayFromHeap(info);
      rotateFilter(heap(filter), heap(swapped), fh, fw, ci, co);
      const padding = [[0, 0], [padTop, Math.max(0, padBottom)], [padLeft, Math.max(0, padRight)], [0, 0]];
      const out = conv2d({ inputs: { x: up, filter: swapped }, attrs: { strides: [1, 1], dilations: [1, 1], pad: padding, dataFormat: 'NHWC' } as never, backend }) as TensorInfo;
      if (out.shape.join() !== [n, H, W, ci].join()) {
        (backend as WasmBackend).disposeData(out.dataId);
        throw new Error(`wasm Conv2DBackpropInput: got [${out.shape.join(', ')}], expected [${inputShape.join(', ')}]`);
      }
      return out;
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
      x.shape, filterShape, strides, 1, pad, dimRoundingMode, false, 'channelsLast',
    );
    const { inHeight: H, inWidth: W, inChannels: ci, batchSize: n, outHeight: oh, outWidth: ow, outChannels: co } = info;
    const { filterHeight: fh, filterWidth: fw, strideHeight: sh, strideWidth: sw } = info;
    const { top, left } = info.padInfo;
    const temps: TensorInfo[] = [];
    const run = (f: KernelFunc, ins: Record<string, TensorInfo>, at: Record<string, unknown>): TensorInfo => {
      const out = f({ inputs: ins, attrs: at as never, backend }) as TensorInfo;
      temps.push(out);
      return out;
    };
    try {
      // Rows/columns of x the filter gradient reads: up to (fh - 1) + (oh - 1) * sh - top.
      const needH = fh + (oh - 1) * sh - top;
      const needW = fw + (ow - 1) * sw - left;
      let xt = run(transpose, { x }, { perm: [3, 1, 2, 0] }); // [ci, H, W, n]
      if (needH < H || needW < W) xt = run(slice, { x: xt }, { begin: [0, 0, 0, 0], size: [ci, Math.min(H, needH), Math.min(W, needW), n] });
      const wasm = backend as unknown as WasmBackend;
      const dyt = wasm.makeOutput([oh, ow, n, co], 'float32');
      temps.push(dyt);
      swapLeadingAxes(wasm.typedArrayFromHeap(dy), wasm.typedArrayFromHeap(dyt), n, oh * ow, co);
      const padding = [[0, 0], [top, Math.max(0, needH - H)], [left, Math.max(0, needW - W)], [0, 0]];
      const out = run(conv2d, { x: xt, filter: dyt }, { strides: [1, 1], dilations: [sh, sw], pad: padding, dataFormat: 'NHWC', dimRoundingMode: undefined });
      if (out.shape.join() !== [ci, fh, fw, co].join()) throw new Error(`wasm Conv2DBackpropFilter: got [${out.shape.join(', ')}], expected [${[ci, fh, fw, co].join(', ')}]`);
      const result = wasm.makeOutput(filterShape, 'float32'); // [ci, fh, fw, co] -> [fh, fw, ci, co]
      swapLeadingAxes(wasm.typedArrayFromHeap(out), wasm.typedArrayFromHeap(result), ci, fh * fw, co);
      return result;
    } finally {
      for (const t of temps) (backend as WasmBackend).disposeData(t.dataId);
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
