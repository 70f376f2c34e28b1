import type { KernelConfig, KernelFunc, TensorInfo } from '@tensorflow/tfjs-core';
import type { Tf } from '@imgpipe/engines';
import { transposeInto } from './heap-copies.js';
import { columnsInside, kernelTemps, wasmKernel } from './wasm-kernel-parts.js';
import type { ConvInfo, WasmBackend } from './wasm-kernel-types.js';

/**
 * Conv-gradient shapes that MobileNet-like networks hit on every step, where the general kernels of
 * wasm-grad-kernels.ts (convolutions XNNPACK runs) are slow:
 * - the filter gradient of a 1x1 stride-1 conv is one matrix product, x^T [ci, P] . dy [P, co] (P = n * h * w):
 *   2-6x faster than as a convolution with dy as an (h x w) filter;
 * - its input gradient too, dy [P, co] . W^T [co, ci]: 25% faster than the general kernel on MobileNet v1's 1x1
 *   convs (with W^T made explicit: BatchMatMul with transposeB ran 10x slower);
 * - the filter gradient of a conv on an image (<= 4 channels) as cols^T [kh*kw*ci, P] . dy [P, co] (im2col): the
 *   general kernel convolves with dy as a huge dilated filter; on MobileNet's first conv (8 images at 224) 31 -> 13 ms,
 *   on ResNet50's (4 images) 81 -> 49 ms;
 * - the input gradient of a strided conv on an image (<= 4 channels; TF.js computes it for the first conv although
 *   nothing uses it) as columns dy [P, co] . W^T [co, kh*kw*ci] added back into the image (col2im): the general
 *   kernel convolves a zero-upsampled dy (4x the pixels) into 3 output channels, which XNNPACK does slowly.
 * Anything else goes to the general kernel.
 */
type Attrs = { strides: number | [number, number]; pad: unknown; dataFormat?: string; dimRoundingMode?: string };

const REPLACED = new WeakSet<object>();

export function registerWasmConvGradFastPaths(tf: Tf): void {
  const reshape = wasmKernel(tf, 'Reshape');
  const transpose = wasmKernel(tf, 'Transpose');
  const batchMatMul = wasmKernel(tf, 'BatchMatMul');
  const infoOf = (xShape: number[], filterShape: number[], attrs: Attrs): ConvInfo =>
    (tf.backend_util.computeConv2DInfo as unknown as (...args: unknown[]) => ConvInfo)(
      xShape,
      filterShape,
      attrs.strides,
      1,
      attrs.pad,
      attrs.dimRoundingMode,
      false,
      'channelsLast',
    );
  /** A conv on an image as columns: K = kh * kw * ci values per output pixel, P = n * oh * ow output pixels. */
  const imageGeometry = (xShape: number[], filterShape: number[], attrs: Attrs) => {
    const info = infoOf(xShape, filterShape, attrs);
    const { batchSize: n, inHeight: H, inWidth: W, outHeight: oh, outWidth: ow, strideHeight: sh, strideWidth: sw } = info;
    const [kh, kw, ci] = filterShape as [number, number, number, number];
    return { n, H, W, oh, ow, sh, sw, top: info.padInfo.top, left: info.padInfo.left, K: kh * kw * ci, P: n * oh * ow };
  };

  /** Pixels (n * h * w) of a 1x1 conv that is a plain matrix product (stride 1, no padding), else undefined. */
  const pointwisePixels = (inShape: number[], filterShape: number[], attrs: Attrs): number | undefined => {
    const info = infoOf(inShape, filterShape, attrs);
    const { top, left, bottom, right } = info.padInfo;
    if (info.strideHeight !== 1 || info.strideWidth !== 1 || top || left || bottom || right) return undefined;
    return info.batchSize * info.outHeight * info.outWidth;
  };

  /**
   * dW [kh*kw*ci, co] = cols^T [kh*kw*ci, P] . dy [P, co], with cols^T written directly from the (zero-padded) image:
   * for the few channels of an image this is a small matrix, where the general kernel convolves with dy as a huge
   * dilated filter.
   */
  const imageFilterGradient = (args: Parameters<KernelFunc>[0]) => {
    const { x, dy } = args.inputs as { x: TensorInfo; dy: TensorInfo };
    const attrs = args.attrs as unknown as Attrs & { filterShape: number[] };
    const [kh, kw, ci, co] = attrs.filterShape as [number, number, number, number];
    const { n, H, W, oh, ow, sh, sw, top, left, K, P } = imageGeometry(x.shape, attrs.filterShape, attrs);
    const t = kernelTemps(args.backend);
    const backend = args.backend as unknown as WasmBackend;
    try {
      const colsT = t.output([1, K, P]);
      const image = backend.typedArrayFromHeap(x);
      const cols = backend.typedArrayFromHeap(colsT);
      for (let fa = 0; fa < kh; fa++)
        for (let fb = 0; fb < kw; fb++) {
          const [jFrom, jTo] = columnsInside(ow, sw, fb - left, W);
          for (let c = 0; c < ci; c++) {
            let q = ((fa * kw + fb) * ci + c) * P;
            for (let bi = 0; bi < n; bi++)
              for (let i = 0; i < oh; i++, q += ow) {
                const r = i * sh + fa - top;
                if (r < 0 || r >= H) {
                  cols.fill(0, q, q + ow);
                  continue;
                }
                cols.fill(0, q, q + jFrom);
                cols.fill(0, q + jTo, q + ow);
                let src = ((bi * H + r) * W + jFrom * sw + fb - left) * ci + c;
                for (let j = jFrom; j < jTo; j++, src += sw * ci) cols[q + j] = image[src]!;
              }
          }
        }
      const b = t.run(reshape, { x: dy }, { shape: [1, P, co] });
      const product = t.run(batchMatMul, { a: colsT, b }, { transposeA: false, transposeB: false });
      return reshape({ inputs: { x: product }, attrs: { shape: attrs.filterShape } as never, backend: args.backend }) as TensorInfo;
    } finally {
      t.dispose();
    }
  };

  const filterFastPath =
    (general: KernelFunc): KernelFunc =>
    (args) => {
      const { x, dy } = args.inputs as { x: TensorInfo; dy: TensorInfo };
      const attrs = args.attrs as unknown as Attrs & { filterShape: number[] };
      const [fh, fw, ci, co] = attrs.filterShape as [number, number, number, number];
      if (attrs.dataFormat === 'NCHW') return general(args);
      if (ci <= 4 && (fh > 1 || fw > 1)) return imageFilterGradient(args);
      if (fh !== 1 || fw !== 1) return general(args);
      const P = pointwisePixels(x.shape, attrs.filterShape, attrs);
      if (P === undefined) return general(args);
      const t = kernelTemps(args.backend);
      const backend = args.backend as unknown as WasmBackend;
      try {
        const a = t.output([1, ci, P]);
        transposeInto(backend.typedArrayFromHeap(x), backend.typedArrayFromHeap(a), P, ci);
        const b = t.run(reshape, { x: dy }, { shape: [1, P, co] });
        const product = t.run(batchMatMul, { a, b }, { transposeA: false, transposeB: false });
        return reshape({ inputs: { x: product }, attrs: { shape: [1, 1, ci, co] } as never, backend: args.backend }) as TensorInfo;
      } finally {
        t.dispose();
      }
    };

  /** dx [P, ci] = dy [P, co] . W^T, W the filter as [ci, co]. */
  const pointwiseInputGradient = (args: Parameters<KernelFunc>[0], general: KernelFunc) => {
    const { dy, filter } = args.inputs as { dy: TensorInfo; filter: TensorInfo };
    const attrs = args.attrs as unknown as Attrs & { inputShape: number[] };
    const [, , ci, co] = filter.shape as [number, number, number, number];
    const P = pointwisePixels(attrs.inputShape, filter.shape, attrs);
    if (P === undefined) return general(args);
    const t = kernelTemps(args.backend);
    try {
      const a = t.run(reshape, { x: dy }, { shape: [1, P, co] });
      const w = t.run(reshape, { x: filter }, { shape: [ci, co] });
      const wT = t.run(transpose, { x: w }, { perm: [1, 0] });
      const b = t.run(reshape, { x: wT }, { shape: [1, co, ci] });
      const product = t.run(batchMatMul, { a, b }, { transposeA: false, transposeB: false });
      return reshape({ inputs: { x: product }, attrs: { shape: attrs.inputShape } as never, backend: args.backend }) as TensorInfo;
    } finally {
      t.dispose();
    }
  };

  const inputFastPath =
    (general: KernelFunc): KernelFunc =>
    (args) => {
      const { dy, filter } = args.inputs as { dy: TensorInfo; filter: TensorInfo };
      const attrs = args.attrs as unknown as Attrs & { inputShape: number[] };
      const [kh, kw, ci, co] = filter.shape as [number, number, number, number];
      if (attrs.dataFormat === 'NCHW') return general(args);
      if (kh === 1 && kw === 1) return pointwiseInputGradient(args, general);
      if (ci > 4) return general(args);
      const { n, H, W, oh, ow, sh, sw, top, left, K, P } = imageGeometry(attrs.inputShape, filter.shape, attrs);
      if (sh === 1 && sw === 1) return general(args);
      const t = kernelTemps(args.backend);
      const backend = args.backend as unknown as WasmBackend;
      try {
        const w2 = t.run(reshape, { x: filter }, { shape: [K, co] });
        const wT = t.run(transpose, { x: w2 }, { perm: [1, 0] });
        const b = t.run(reshape, { x: wT }, { shape: [1, co, K] });
        const a = t.run(reshape, { x: dy }, { shape: [1, P, co] });
        const cols = t.run(batchMatMul, { a, b }, { transposeA: false, transposeB: false }); // [1, P, K]
        const out = backend.makeOutput(attrs.inputShape, 'float32');
        const colv = backend.typedArrayFromHeap(cols);
        const dx = backend.typedArrayFromHeap(out);
        dx.fill(0);
        for (let bi = 0, p = 0; bi < n; bi++)
          for (let i = 0; i < oh; i++)
            for (let j = 0; j < ow; j++, p++)
              for (let fa = 0; fa < kh; fa++) {
                const r = i * sh + fa - top;
                if (r < 0 || r >= H) continue;
                for (let fb = 0; fb < kw; fb++) {
                  const s = j * sw + fb - left;
                  if (s < 0 || s >= W) continue;
                  const src = p * K + (fa * kw + fb) * ci;
                  const dst = ((bi * H + r) * W + s) * ci;
                  for (let c = 0; c < ci; c++) dx[dst + c]! += colv[src + c]!;
                }
              }
        return out;
      } finally {
        t.dispose();
      }
    };

  for (const [name, wrap] of [
    ['Conv2DBackpropFilter', filterFastPath],
    ['Conv2DBackpropInput', inputFastPath],
  ] as const) {
    const config = tf.getKernel(name, 'wasm');
    if (!config || REPLACED.has(config)) continue;
    tf.unregisterKernel(name, 'wasm');
    tf.registerKernel({ ...config, kernelFunc: wrap(config.kernelFunc) } as KernelConfig);
    REPLACED.add(tf.getKernel(name, 'wasm')!);
  }
}
