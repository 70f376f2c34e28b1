import type { KernelConfig, KernelFunc, TensorInfo } from '@tensorflow/tfjs-core';
import type { Tf } from '@imgpipe/engines';
import type { ConvInfo, WasmBackend } from './wasm-kernel-types.js';
import { columnsInside, fullCorrelationInput, kernelTemps, wasmKernel } from './wasm-kernel-parts.js';
import { simdLoops, type DepthwiseGeometry } from './wasm-simd-loops.js';

/**
 * Depthwise-convolution gradient kernels for TF.js WebAssembly, which has none, so that --fine-tune trains
 * MobileNet-like backbones on wasm instead of TF.js's plain JavaScript cpu backend. With C channels, multiplier m,
 * filter f [fh, fw, C, m] and dy [n, oh, ow, C*m]:
 *
 *   dx[n, r, s, c]   = sum_{i,j,a,b,q: r = i*sh + a*dh - top, s = j*sw + b*dw - left} f[a, b, c, q] * dy[n, i, j, c*m + q]
 *   df[a, b, c, q]   = sum_{n,i,j} xpad[n, i*sh + a*dh, j*sw + b*dw, c] * dy[n, i, j, c*m + q]
 *
 * dx runs as one XNNPACK depthwise convolution. df is a loop over the heap: SIMD WebAssembly (wasm-simd-loops.ts)
 * with multiplier 1 and channels a multiple of 4 (MobileNet v1 0.75's 13 depthwise layers, 8 images at 224: 33 ms),
 * else JavaScript (111 ms there). As an XNNPACK depthwise convolution (images x channels as channels, dy as an
 * oh x ow filter) it took twice the JavaScript loop's time.
 */
type Attrs = {
  strides: [number, number] | number;
  dilations?: [number, number] | number;
  pad: unknown;
  dimRoundingMode?: string;
  dataFormat?: string;
};

export function registerWasmDepthwiseGradKernels(tf: Tf): void {
  if (tf.getKernel('DepthwiseConv2dNativeBackpropInput', 'wasm')) return;
  const depthwise = wasmKernel(tf, 'DepthwiseConv2dNative');
  const reshape = wasmKernel(tf, 'Reshape');
  const reverse = wasmKernel(tf, 'Reverse');
  const sum = wasmKernel(tf, 'Sum');
  const infoOf = (xShape: number[], filterShape: number[], attrs: Attrs): ConvInfo => {
    if (attrs.dataFormat === 'NCHW') throw new Error("wasm depthwise conv gradients support dataFormat 'NHWC' only");
    return (tf.backend_util.computeConv2DInfo as unknown as (...args: unknown[]) => ConvInfo)(
      xShape,
      filterShape,
      attrs.strides,
      attrs.dilations ?? 1,
      attrs.pad,
      attrs.dimRoundingMode,
      true,
      'channelsLast',
    );
  };
  /** dx as a depthwise convolution (XNNPACK) of dy, zero-upsampled by the stride, with the filter rotated 180 degrees. */
  const backpropInputXnn: KernelFunc = ({ inputs, attrs, backend }) => {
    const { dy, filter } = inputs as { dy: TensorInfo; filter: TensorInfo };
    const { inputShape } = attrs as unknown as { inputShape: number[] };
    const info = infoOf(inputShape, filter.shape, attrs as unknown as Attrs);
    const { batchSize: n, inHeight: H, inWidth: W, inChannels: C, outChannels: cm } = info;
    const { filterHeight: fh, filterWidth: fw, strideHeight: sh, strideWidth: sw, dilationHeight: dh, dilationWidth: dw } = info;
    const { top, left } = info.padInfo;
    const m = cm / C;
    const t = kernelTemps(backend);
    try {
      const { input, pad } = fullCorrelationInput(tf, t, dy, { H, W, fh, fw, sh, sw, dh, dw, top, left }, 'DepthwiseConv2dNativeBackpropInput');
      const flipped = t.run(reverse, { x: filter }, { dims: [0, 1] });
      const perChannel = m === 1 ? flipped : t.run(reshape, { x: flipped }, { shape: [fh, fw, cm, 1] });
      const out = t.run(depthwise, { x: input, filter: perChannel }, { strides: [1, 1], dilations: [dh, dw], pad, dataFormat: 'NHWC' });
      if (m === 1) return t.keep(out);
      const split = t.run(reshape, { x: out }, { shape: [n, H, W, C, m] });
      return t.keep(t.run(sum, { x: split }, { axis: [4], keepDims: false }));
    } finally {
      t.dispose();
    }
  };

  /**
   * df as a loop over the heap: SIMD per filter tap and output row (multiplier 1, channels a multiple of 4); else in
   * JavaScript, for multiplier 1 and 3-wide filters per image, output row and filter row, each channel walking the
   * row with one accumulator per filter column (edge columns checked, the interior not), and any other shape tap by tap.
   */
  const backpropFilter: KernelFunc = ({ inputs, attrs, backend }) => {
    const { x, dy } = inputs as { x: TensorInfo; dy: TensorInfo };
    const { filterShape } = attrs as unknown as { filterShape: number[] };
    const info = infoOf(x.shape, filterShape, attrs as unknown as Attrs);
    const { batchSize: n, inHeight: H, inWidth: W, inChannels: C, outHeight: oh, outWidth: ow, outChannels: cm } = info;
    const { filterHeight: fh, filterWidth: fw, strideHeight: sh, strideWidth: sw, dilationHeight: dh, dilationWidth: dw } = info;
    const { top, left } = info.padInfo;
    const wasm = backend as unknown as WasmBackend;
    const out = wasm.makeOutput(filterShape, 'float32');
    const geometry = { n, H, W, C, oh, ow, fh, fw, sh, sw, dh, dw, top, left };
    let acc = cm === C ? simdLoops(wasm).depthwiseFilterGradient(x, dy, geometry) : undefined;
    if (!acc) {
      acc = new Float64Array(fh * fw * cm);
      const [xv, dyv] = [wasm.typedArrayFromHeap(x), wasm.typedArrayFromHeap(dy)];
      if (cm === C && fw === 3) filterGradRows3(xv, dyv, acc, geometry);
      else filterGradGeneric(xv, dyv, acc, { ...geometry, cm });
    }
    wasm.typedArrayFromHeap(out).set(acc);
    return out;
  };

  const register = (kernelName: string, kernelFunc: KernelFunc) => tf.registerKernel({ kernelName, backendName: 'wasm', kernelFunc } as KernelConfig);
  register('DepthwiseConv2dNativeBackpropInput', backpropInputXnn);
  register('DepthwiseConv2dNativeBackpropFilter', backpropFilter);
}

/** Depthwise filter gradient, multiplier 1, filters 3 wide. */
function filterGradRows3(x: Float32Array, dy: Float32Array, acc: Float64Array, g: DepthwiseGeometry): void {
  const { n, H, W, C, oh, ow, fh, sh, sw, dh, dw, top, left } = g;
  // Output columns whose three taps all fall inside x.
  const jLo = columnsInside(ow, sw, -left, W)[0];
  const jHi = Math.max(jLo, columnsInside(ow, sw, 2 * dw - left, W)[1]);
  const xStep = sw * C;
  for (let b = 0; b < n; b++) {
    for (let i = 0; i < oh; i++) {
      const dyRow = (b * oh + i) * ow * C;
      for (let a = 0; a < fh; a++) {
        const r = i * sh + a * dh - top;
        if (r < 0 || r >= H) continue;
        const xRow = (b * H + r) * W * C;
        const accRow = a * 3 * C;
        for (let c = 0; c < C; c++) {
          let s0 = 0;
          let s1 = 0;
          let s2 = 0;
          let xi = xRow + (jLo * sw - left) * C + c;
          let gi = dyRow + jLo * C + c;
          const d1 = dw * C;
          const d2 = 2 * dw * C;
          for (let j = jLo; j < jHi; j++, xi += xStep, gi += C) {
            const gv = dy[gi]!;
            s0 += x[xi]! * gv;
            s1 += x[xi + d1]! * gv;
            s2 += x[xi + d2]! * gv;
          }
          for (let j = 0; j < ow; j++) {
            if (j === jLo) j = jHi;
            if (j >= ow) break;
            const gv = dy[dyRow + j * C + c]!;
            const col = j * sw - left;
            if (col >= 0 && col < W) s0 += x[xRow + col * C + c]! * gv;
            if (col + dw >= 0 && col + dw < W) s1 += x[xRow + (col + dw) * C + c]! * gv;
            if (col + 2 * dw >= 0 && col + 2 * dw < W) s2 += x[xRow + (col + 2 * dw) * C + c]! * gv;
          }
          acc[accRow + c]! += s0;
          acc[accRow + C + c]! += s1;
          acc[accRow + 2 * C + c]! += s2;
        }
      }
    }
  }
}

/** Depthwise filter gradient, any multiplier and filter size: a multiply-add over contiguous channels per tap. */
function filterGradGeneric(x: Float32Array, dy: Float32Array, acc: Float64Array, g: DepthwiseGeometry & { cm: number }): void {
  const { n, H, W, C, oh, ow, cm, fh, fw, sh, sw, dh, dw, top, left } = g;
  const m = cm / C;
  for (let b = 0; b < n; b++)
    for (let i = 0; i < oh; i++)
      for (let a = 0; a < fh; a++) {
        const r = i * sh + a * dh - top;
        if (r < 0 || r >= H) continue;
        for (let j = 0; j < ow; j++) {
          const dyBase = ((b * oh + i) * ow + j) * cm;
          for (let e = 0; e < fw; e++) {
            const s = j * sw + e * dw - left;
            if (s < 0 || s >= W) continue;
            const xBase = ((b * H + r) * W + s) * C;
            const fBase = (a * fw + e) * cm;
            for (let c = 0; c < C; c++) {
              const xc = x[xBase + c]!;
              for (let q = 0; q < m; q++) acc[fBase + c * m + q]! += xc * dy[dyBase + c * m + q]!;
            }
          }
        }
      }
}
