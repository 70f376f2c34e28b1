import type { KernelConfig, KernelFunc, TensorInfo } from '@tensorflow/tfjs';
import type { Tf } from './tf.js';

/**
 * Depthwise-convolution gradient kernels for TF.js WebAssembly, which has none, so that --fine-tune trains
 * MobileNet-like backbones on wasm instead of TF.js's plain JavaScript cpu backend. With C channels, multiplier m,
 * filter f [fh, fw, C, m] and dy [n, oh, ow, C*m]:
 *
 *   dx[n, r, s, c]   = sum_{i,j,a,b,q: r = i*sh + a*dh - top, s = j*sw + b*dw - left} f[a, b, c, q] * dy[n, i, j, c*m + q]
 *   df[a, b, c, q]   = sum_{n,i,j} xpad[n, i*sh + a*dh, j*sw + b*dw, c] * dy[n, i, j, c*m + q]
 */
type WasmBackend = {
  disposeData(dataId: object): void;
  makeOutput(shape: number[], dtype: 'float32'): TensorInfo;
  typedArrayFromHeap(info: TensorInfo): Float32Array;
};
type DepthwiseInfo = {
  batchSize: number;
  inHeight: number;
  inWidth: number;
  inChannels: number;
  outHeight: number;
  outWidth: number;
  outChannels: number;
  filterHeight: number;
  filterWidth: number;
  strideHeight: number;
  strideWidth: number;
  dilationHeight: number;
  dilationWidth: number;
  padInfo: { top: number; left: number };
};
type Attrs = {
  strides: [number, number] | number;
  dilations?: [number, number] | number;
  pad: unknown;
  dimRoundingMode?: string;
  dataFormat?: string;
};

export const VARIANT = { input: process.env.IMGPIPE_DW_INPUT ?? 'xnn', filter: process.env.IMGPIPE_DW_FILTER ?? 'js' };

export function registerWasmDepthwiseGradKernels(tf: Tf): void {
  if (tf.getKernel('DepthwiseConv2dNativeBackpropInput', 'wasm')) return;
  const kernel = (name: string): KernelFunc => {
    const config = tf.getKernel(name, 'wasm');
    if (!config) throw new Error(`the TF.js wasm backend has no ${name} kernel`);
    return config.kernelFunc;
  };
  const depthwise = kernel('DepthwiseConv2dNative');
  const reshape = kernel('Reshape');
  const padV2 = kernel('PadV2');
  const reverse = kernel('Reverse');
  const slice = kernel('Slice');
  const sum = kernel('Sum');
  const transpose = kernel('Transpose');
  const infoOf = (xShape: number[], filterShape: number[], attrs: Attrs): DepthwiseInfo => {
    if (attrs.dataFormat === 'NCHW') throw new Error("wasm depthwise conv gradients support dataFormat 'NHWC' only");
    return (tf.backend_util.computeConv2DInfo as unknown as (...args: unknown[]) => DepthwiseInfo)(
      xShape, filterShape, attrs.strides, attrs.dilations ?? 1, attrs.pad, attrs.dimRoundingMode, true, 'channelsLast',
    );
  };
  const temps = (backend: unknown) => {
    const made: TensorInfo[] = [];
    return {
      run(f: KernelFunc, inputs: Record<string, TensorInfo>, attrs: Record<string, unknown>): TensorInfo {
        const out = f({ inputs, attrs: attrs as never, backend: backend as never }) as TensorInfo;
        made.push(out);
        return out;
      },
      keep(t: TensorInfo): TensorInfo {
        made.splice(made.indexOf(t), 1);
        return t;
      },
      dispose() {
        for (const t of made) (backend as WasmBackend).disposeData(t.dataId);
      },
    };
  };

  /** dx as a depthwise convolution (XNNPACK) of dy, zero-upsampled by the stride, with the filter rotated 180 degrees. */
  const backpropInputXnn: KernelFunc = ({ inputs, attrs, backend }) => {
    const { dy, filter } = inputs as { dy: TensorInfo; filter: TensorInfo };
    const { inputShape } = attrs as unknown as { inputShape: number[] };
    const info = infoOf(inputShape, filter.shape, attrs as unknown as Attrs);
    const { batchSize: n, inHeight: H, inWidth: W, inChannels: C, outHeight: oh, outWidth: ow, outChannels: cm } = info;
    const { filterHeight: fh, filterWidth: fw, strideHeight: sh, strideWidth: sw, dilationHeight: dh, dilationWidth: dw } = info;
    const { top, left } = info.padInfo;
    const m = cm / C;
    const t = temps(backend);
    try {
      let up = dy;
      if (sh > 1 || sw > 1) {
        const six = t.run(reshape, { x: dy }, { shape: [n, oh, 1, ow, 1, cm] });
        const padded = t.run(padV2, { x: six }, { paddings: [[0, 0], [0, 0], [0, sh - 1], [0, 0], [0, sw - 1], [0, 0]], constantValue: 0 });
        up = t.run(reshape, { x: padded }, { shape: [n, oh * sh, ow * sw, cm] });
      }
      // Full correlation: pad by (extent - 1 - top) before; after, whatever makes the output H x W (crop if negative).
      const padTop = (fh - 1) * dh - top;
      const padLeft = (fw - 1) * dw - left;
      const padBottom = H + (fh - 1) * dh - padTop - oh * sh;
      const padRight = W + (fw - 1) * dw - padLeft - ow * sw;
      if (padTop < 0 || padLeft < 0) throw new Error(`wasm DepthwiseConv2dNativeBackpropInput: padding ${top}/${left} is larger than the filter`);
      if (padBottom < 0 || padRight < 0) {
        up = t.run(slice, { x: up }, { begin: [0, 0, 0, 0], size: [n, oh * sh + Math.min(0, padBottom), ow * sw + Math.min(0, padRight), cm] });
      }
      const flipped = t.run(reverse, { x: filter }, { dims: [0, 1] });
      const perChannel = m === 1 ? flipped : t.run(reshape, { x: flipped }, { shape: [fh, fw, cm, 1] });
      const pad = [[0, 0], [padTop, Math.max(0, padBottom)], [padLeft, Math.max(0, padRight)], [0, 0]];
      const out = t.run(depthwise, { x: up, filter: perChannel }, { strides: [1, 1], dilations: [dh, dw], pad, dataFormat: 'NHWC' });
      if (m === 1) return t.keep(out);
      const split = t.run(reshape, { x: out }, { shape: [n, H, W, C, m] });
      return t.keep(t.run(sum, { x: split }, { axis: [4], keepDims: false }));
    } finally {
      t.dispose();
    }
  };

  /** df as a depthwise convolution of x (images and channels as channels) with dy as the (oh x ow) filter. */
  const backpropFilterXnn: KernelFunc = ({ inputs, attrs, backend }) => {
    const { x, dy } = inputs as { x: TensorInfo; dy: TensorInfo };
    const { filterShape } = attrs as unknown as { filterShape: number[] };
    const info = infoOf(x.shape, filterShape, attrs as unknown as Attrs);
    const { batchSize: n, inHeight: H, inWidth: W, inChannels: C, outHeight: oh, outWidth: ow, outChannels: cm } = info;
    const { filterHeight: fh, filterWidth: fw, strideHeight: sh, strideWidth: sw, dilationHeight: dh, dilationWidth: dw } = info;
    const { top, left } = info.padInfo;
    const m = cm / C;
    const t = temps(backend);
    try {
      const needH = (fh - 1) * dh + (oh - 1) * sh + 1 - top;
      const needW = (fw - 1) * dw + (ow - 1) * sw + 1 - left;
      let xs = x;
      if (needH < H || needW < W) xs = t.run(slice, { x }, { begin: [0, 0, 0, 0], size: [n, Math.min(H, needH), Math.min(W, needW), C] });
      const xh = Math.min(H, needH);
      const xw = Math.min(W, needW);
      const xt = t.run(transpose, { x: xs }, { perm: [1, 2, 0, 3] }); // [h, w, n, C]
      const x1 = t.run(reshape, { x: xt }, { shape: [1, xh, xw, n * C] });
      const dyt = t.run(transpose, { x: dy }, { perm: [1, 2, 0, 3] }); // [oh, ow, n, C*m]
      const f = t.run(reshape, { x: dyt }, { shape: [oh, ow, n * C, m] });
      const pad = [[0, 0], [top, Math.max(0, needH - H)], [left, Math.max(0, needW - W)], [0, 0]];
      const out = t.run(depthwise, { x: x1, filter: f }, { strides: [dh, dw], dilations: [sh, sw], pad, dataFormat: 'NHWC' });
      const split = t.run(reshape, { x: out }, { shape: [fh, fw, n, cm] });
      const summed = t.run(sum, { x: split }, { axis: [2], keepDims: false });
      return t.keep(t.run(reshape, { x: summed }, { shape: filterShape }));
    } finally {
      t.dispose();
    }
  };

  /** df as a loop over the heap: per output pixel and tap, a multiply-add over contiguous channels. */
  const backpropFilterJs: KernelFunc = ({ inputs, attrs, backend }) => {
    const { x, dy } = inputs as { x: TensorInfo; dy: TensorInfo };
    const { filterShape } = attrs as unknown as { filterShape: number[] };
    const info = infoOf(x.shape, filterShape, attrs as unknown as Attrs);
    const { batchSize: n, inHeight: H, inWidth: W, inChannels: C, outHeight: oh, outWidth: ow, outChannels: cm } = info;
    const { filterHeight: fh, filterWidth: fw, strideHeight: sh, strideWidth: sw, dilationHeight: dh, dilationWidth: dw } = info;
    const { top, left } = info.padInfo;
    const m = cm / C;
    const wasm = backend as unknown as WasmBackend;
    const out = wasm.makeOutput(filterShape, 'float32');
    const xv = wasm.typedArrayFromHeap(x);
    const dyv = wasm.typedArrayFromHeap(dy);
    const acc = new Float64Array(fh * fw * cm);
    for (let b = 0; b < n; b++) {
      for (let i = 0; i < oh; i++) {
        for (let a = 0; a < fh; a++) {
          const r = i * sh + a * dh - top;
          if (r < 0 || r >= H) continue;
          for (let j = 0; j < ow; j++) {
            const dyBase = ((b * oh + i) * ow + j) * cm;
            for (let bb = 0; bb < fw; bb++) {
              const s = j * sw + bb * dw - left;
              if (s < 0 || s >= W) continue;
              const xBase = ((b * H + r) * W + s) * C;
              const fBase = (a * fw + bb) * cm;
              if (m === 1) {
                for (let c = 0; c < C; c++) acc[fBase + c]! += xv[xBase + c]! * dyv[dyBase + c]!;
              } else {
                for (let c = 0; c < C; c++) {
                  const xc = xv[xBase + c]!;
                  for (let q = 0; q < m; q++) acc[fBase + c * m + q]! += xc * dyv[dyBase + c * m + q]!;
                }
              }
            }
          }
        }
      }
    }
    wasm.typedArrayFromHeap(out).set(acc);
    return out;
  };

  const register = (kernelName: string, kernelFunc: KernelFunc) => tf.registerKernel({ kernelName, backendName: 'wasm', kernelFunc } as KernelConfig);
  register('DepthwiseConv2dNativeBackpropInput', backpropInputXnn);
  register('DepthwiseConv2dNativeBackpropFilter', VARIANT.filter === 'xnn' ? backpropFilterXnn : backpropFilterJs);
}
