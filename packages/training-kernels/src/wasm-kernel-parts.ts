import type { KernelFunc, TensorInfo } from '@tensorflow/tfjs-core';
import type { Tf } from '@imgpipe/engines';
import type { WasmBackend } from './wasm-kernel-types.js';

/** What imgpipe's wasm gradient kernels build on: other wasm kernels, temporaries, and the stride's zero-upsampling. */

/** A wasm kernel's function, to call from inside another kernel. */
export function wasmKernel(tf: Tf, name: string): KernelFunc {
  const config = tf.getKernel(name, 'wasm');
  if (!config) throw new Error(`the TF.js wasm backend has no ${name} kernel`);
  return config.kernelFunc;
}

/** Tensors a kernel makes on the way to its output; dispose() frees all but those kept. */
interface KernelTemps {
  run(f: KernelFunc, inputs: Record<string, TensorInfo>, attrs: Record<string, unknown>): TensorInfo;
  /** A new float32 tensor to fill from JavaScript. */
  output(shape: number[]): TensorInfo;
  /** Not freed by dispose(): the kernel's result. */
  keep(t: TensorInfo): TensorInfo;
  dispose(): void;
}

export function kernelTemps(backend: unknown): KernelTemps {
  const wasm = backend as WasmBackend;
  const made: TensorInfo[] = [];
  const track = (t: TensorInfo) => {
    made.push(t);
    return t;
  };
  return {
    run: (f, inputs, attrs) => track(f({ inputs, attrs: attrs as never, backend: backend as never }) as TensorInfo),
    output: (shape) => track(wasm.makeOutput(shape, 'float32')),
    keep(t) {
      made.splice(made.indexOf(t), 1);
      return t;
    },
    dispose() {
      for (const t of made) wasm.disposeData(t.dataId);
    },
  };
}

/** A conv's geometry, channels last: input H x W, filter fh x fw, strides, dilations, and top/left padding. */
export interface ConvGeometry {
  H: number;
  W: number;
  fh: number;
  fw: number;
  sh: number;
  sw: number;
  dh: number;
  dw: number;
  top: number;
  left: number;
}

/**
 * dy [n, oh, ow, c] zero-upsampled by the stride ((stride - 1) zeros after each row and column), and the padding
 * (extent - 1 - top before; after, whatever makes the output H x W, cropping dy where that is negative) under which
 * a stride-1 correlation with the rotated filter gives the input gradient. `kernel` names the caller in errors.
 */
export function fullCorrelationInput(
  tf: Tf,
  t: KernelTemps,
  dy: TensorInfo,
  g: ConvGeometry,
  kernel: string,
): { input: TensorInfo; pad: number[][] } {
  const [n, oh, ow, c] = dy.shape as [number, number, number, number];
  const reshape = wasmKernel(tf, 'Reshape');
  let input = dy;
  if (g.sh > 1 || g.sw > 1) {
    const six = t.run(reshape, { x: dy }, { shape: [n, oh, 1, ow, 1, c] });
    const padded = t.run(
      wasmKernel(tf, 'PadV2'),
      { x: six },
      {
        paddings: [
          [0, 0],
          [0, 0],
          [0, g.sh - 1],
          [0, 0],
          [0, g.sw - 1],
          [0, 0],
        ],
        constantValue: 0,
      },
    );
    input = t.run(reshape, { x: padded }, { shape: [n, oh * g.sh, ow * g.sw, c] });
  }
  const padTop = (g.fh - 1) * g.dh - g.top;
  const padLeft = (g.fw - 1) * g.dw - g.left;
  const padBottom = g.H + (g.fh - 1) * g.dh - padTop - oh * g.sh;
  const padRight = g.W + (g.fw - 1) * g.dw - padLeft - ow * g.sw;
  if (padTop < 0 || padLeft < 0) throw new Error(`wasm ${kernel}: padding ${g.top}/${g.left} is larger than the filter`);
  if (padBottom < 0 || padRight < 0) {
    const size = [n, oh * g.sh + Math.min(0, padBottom), ow * g.sw + Math.min(0, padRight), c];
    input = t.run(wasmKernel(tf, 'Slice'), { x: input }, { begin: [0, 0, 0, 0], size });
  }
  return {
    input,
    pad: [
      [0, 0],
      [padTop, Math.max(0, padBottom)],
      [padLeft, Math.max(0, padRight)],
      [0, 0],
    ],
  };
}

/**
 * The output columns [from, to) whose filter tap reads inside the input: 0 <= j * stride + offset < width, with
 * offset = tap * dilation - left padding. The same holds for rows.
 */
export function columnsInside(outWidth: number, stride: number, offset: number, width: number): [number, number] {
  const from = Math.min(outWidth, Math.max(0, Math.ceil(-offset / stride)));
  const to = Math.max(from, Math.min(outWidth, Math.floor((width - 1 - offset) / stride) + 1));
  return [from, to];
}
