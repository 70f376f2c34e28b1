import type { KernelConfig, KernelFunc, TensorInfo } from '@tensorflow/tfjs-core';
import type { Tf } from '@imgpipe/engines';

/**
 * Loops over the wasm heap for TF.js WebAssembly kernels that are pathologically slow in the shapes training a
 * BatchNorm network hits (measured on [8, 112, 112, 32] floats: Tile of a per-channel vector 750 ms, FusedBatchNorm
 * 106 ms, Select 85 ms, Greater with a scalar 65 ms, Sum over the leading axes 32 ms, Minimum with a scalar 25 ms,
 * where a multiply takes 2 ms), and an Identity that
 * shares the buffer instead of copying it. Each handles the common case and hands anything else to the original.
 */
type Heap = Float32Array | Int32Array | Uint8Array;
type WasmBackend = {
  makeOutput(shape: number[], dtype: string): TensorInfo;
  typedArrayFromHeap(info: TensorInfo): Heap;
};
type Args = Parameters<KernelFunc>[0];

const size = (shape: number[]) => shape.reduce((a, b) => a * b, 1);
const REPLACED = new WeakSet<object>();

export function registerWasmFastKernels(tf: Tf): void {
  const replace = (kernelName: string, make: (original: KernelFunc) => KernelFunc) => {
    const config = tf.getKernel(kernelName, 'wasm');
    if (!config || REPLACED.has(config)) return;
    const original = config.kernelFunc;
    tf.unregisterKernel(kernelName, 'wasm');
    // setupFunc is kept: the original kernel (the fallback) still needs its wasm function bound.
    tf.registerKernel({ ...config, kernelFunc: make(original) } as KernelConfig);
    REPLACED.add(tf.getKernel(kernelName, 'wasm')!);
  };

  const broadcastShape = tf.backend_util.assertAndGetBroadcastShape as (a: number[], b: number[]) => number[];
  const binary = (original: KernelFunc, dtype: 'bool' | 'float32', loop: BinaryLoop) => binaryKernel(original, dtype, loop, broadcastShape);

  replace('Tile', (original) => (args) => {
    const { x } = args.inputs as { x: TensorInfo };
    const { reps } = args.attrs as unknown as { reps: number[] };
    if (x.dtype === 'string') return original(args);
    const backend = args.backend as unknown as WasmBackend;
    const outShape = x.shape.map((d, i) => d * reps[i]!);
    const out = backend.makeOutput(outShape, x.dtype);
    tile(backend.typedArrayFromHeap(x), x.shape, reps, backend.typedArrayFromHeap(out));
    return out;
  });

  // One loop per op (no shared callback), so that each stays monomorphic.
  replace('Greater', (original) =>
    binary(original, 'bool', (a, b, o, sa, sb) => {
      for (let i = 0, x = 0, y = 0; i < o.length; i++, x += sa, y += sb) o[i] = a[x]! > b[y]! ? 1 : 0;
    }),
  );
  replace('GreaterEqual', (original) =>
    binary(original, 'bool', (a, b, o, sa, sb) => {
      for (let i = 0, x = 0, y = 0; i < o.length; i++, x += sa, y += sb) o[i] = a[x]! >= b[y]! ? 1 : 0;
    }),
  );
  replace('Less', (original) =>
    binary(original, 'bool', (a, b, o, sa, sb) => {
      for (let i = 0, x = 0, y = 0; i < o.length; i++, x += sa, y += sb) o[i] = a[x]! < b[y]! ? 1 : 0;
    }),
  );
  replace('LessEqual', (original) =>
    binary(original, 'bool', (a, b, o, sa, sb) => {
      for (let i = 0, x = 0, y = 0; i < o.length; i++, x += sa, y += sb) o[i] = a[x]! <= b[y]! ? 1 : 0;
    }),
  );
  replace('Minimum', (original) =>
    binary(original, 'float32', (a, b, o, sa, sb) => {
      for (let i = 0, x = 0, y = 0; i < o.length; i++, x += sa, y += sb) o[i] = Math.min(a[x]!, b[y]!);
    }),
  );
  replace('Maximum', (original) =>
    binary(original, 'float32', (a, b, o, sa, sb) => {
      for (let i = 0, x = 0, y = 0; i < o.length; i++, x += sa, y += sb) o[i] = Math.max(a[x]!, b[y]!);
    }),
  );
  replace('LogicalAnd', (original) => (args) => {
    const { a, b } = args.inputs as { a: TensorInfo; b: TensorInfo };
    if (a.shape.join() !== b.shape.join() || a.dtype !== 'bool' || b.dtype !== 'bool') return original(args);
    const backend = args.backend as unknown as WasmBackend;
    const out = backend.makeOutput(a.shape, 'bool');
    const [x, y, o] = [a, b, out].map((v) => backend.typedArrayFromHeap(v) as Uint8Array) as [Uint8Array, Uint8Array, Uint8Array];
    for (let i = 0; i < o.length; i++) o[i] = x[i]! & y[i]!;
    return out;
  });

  // TF.js data is immutable: a copy shares the buffer (as on the cpu backend) instead of copying it. The tape
  // clones every tensor it saves for the gradient, so wasm copied each activation once per step.
  replace('Identity', (original) => (args) => {
    const { x } = args.inputs as { x: TensorInfo };
    if (x.dtype === 'string') return original(args);
    (args.backend as unknown as { incRef(dataId: object): void }).incRef(x.dataId);
    return { dataId: x.dataId, shape: x.shape, dtype: x.dtype };
  });

  replace('Select', (original) => (args) => {
    const { condition, t, e } = args.inputs as { condition: TensorInfo; t: TensorInfo; e: TensorInfo };
    const n = size(t.shape);
    if (size(condition.shape) !== n || size(e.shape) !== n || t.dtype !== 'float32' || e.dtype !== 'float32') return original(args);
    const backend = args.backend as unknown as WasmBackend;
    const out = backend.makeOutput(t.shape, 'float32');
    const c = backend.typedArrayFromHeap(condition);
    const [a, b, o] = [t, e, out].map((v) => backend.typedArrayFromHeap(v) as Float32Array) as [Float32Array, Float32Array, Float32Array];
    for (let i = 0; i < n; i++) o[i] = c[i] ? a[i]! : b[i]!;
    return out;
  });

  replace('FusedBatchNorm', (original) => (args) => {
    const { x, mean, variance, offset, scale } = args.inputs as Record<string, TensorInfo | undefined>;
    const { varianceEpsilon } = args.attrs as unknown as { varianceEpsilon: number };
    const channels = x!.shape.at(-1)!;
    const perChannel = (v: TensorInfo | undefined) =>
      v === undefined || v === null || size(v.shape) === 1 || (v.shape.length === 1 && v.shape[0] === channels);
    if (x!.dtype !== 'float32' || ![mean, variance, offset, scale].every(perChannel)) return original(args);
    const backend = args.backend as unknown as WasmBackend;
    const out = backend.makeOutput(x!.shape, 'float32');
    const read = (v: TensorInfo | undefined, fallback: number) => {
      const values = new Float64Array(channels).fill(fallback);
      if (v) {
        const heap = backend.typedArrayFromHeap(v);
        for (let c = 0; c < channels; c++) values[c] = heap.length === 1 ? heap[0]! : heap[c]!;
      }
      return values;
    };
    // y = (x - mean) * scale / sqrt(variance + eps) + offset = x * mul + add, per channel
    const [m, v, o, s] = [read(mean!, 0), read(variance!, 1), read(offset, 0), read(scale, 1)];
    const mul = new Float32Array(channels);
    const add = new Float32Array(channels);
    for (let c = 0; c < channels; c++) {
      mul[c] = s[c]! / Math.sqrt(v[c]! + varianceEpsilon);
      add[c] = o[c]! - m[c]! * mul[c]!;
    }
    const xs = backend.typedArrayFromHeap(x!) as Float32Array;
    const ys = backend.typedArrayFromHeap(out) as Float32Array;
    for (let i = 0; i < xs.length; i += channels) for (let c = 0; c < channels; c++) ys[i + c] = xs[i + c]! * mul[c]! + add[c]!;
    return out;
  });

  const reduceLeading = (name: 'Sum' | 'Mean') =>
    replace(name, (original) => (args) => {
      const { x } = args.inputs as { x: TensorInfo };
      const { axis, keepDims } = args.attrs as unknown as { axis: number | number[]; keepDims: boolean };
      const rank = x.shape.length;
      const axes = [...new Set((Array.isArray(axis) ? axis : [axis]).map((a) => (a < 0 ? a + rank : a)))].sort((a, b) => a - b);
      // Only a strict prefix of the axes (e.g. [0, 1, 2] of NHWC: per channel); the wasm kernel transposes for it.
      if (x.dtype !== 'float32' || axes.length === 0 || axes.length >= rank || axes.some((a, i) => a !== i)) return original(args);
      const backend = args.backend as unknown as WasmBackend;
      const inner = size(x.shape.slice(axes.length));
      const count = size(x.shape) / inner;
      const outShape = keepDims ? x.shape.map((d, i) => (i < axes.length ? 1 : d)) : x.shape.slice(axes.length);
      const acc = new Float64Array(inner);
      const xs = backend.typedArrayFromHeap(x) as Float32Array;
      sumRows(xs, count, inner, acc);
      const out = backend.makeOutput(outShape, 'float32');
      const ys = backend.typedArrayFromHeap(out) as Float32Array;
      for (let c = 0; c < inner; c++) ys[c] = name === 'Mean' ? acc[c]! / count : acc[c]!;
      return out;
    });
  reduceLeading('Sum');
  reduceLeading('Mean');
}

/**
 * An elementwise binary kernel on float32 inputs of equal sizes or with a scalar on either side; other dtypes and
 * broadcasts go to the original.
 */
type BinaryLoop = (a: Float32Array, b: Float32Array, out: Float32Array | Uint8Array, aStep: number, bStep: number) => void;

function binaryKernel(
  original: KernelFunc,
  dtype: 'bool' | 'float32',
  loop: BinaryLoop,
  broadcastShape: (a: number[], b: number[]) => number[],
): KernelFunc {
  return (args: Args) => {
    const { a, b } = args.inputs as { a: TensorInfo; b: TensorInfo };
    const [na, nb] = [size(a.shape), size(b.shape)];
    const supported = a.dtype === 'float32' && b.dtype === 'float32';
    if (!supported || (na !== nb && na !== 1 && nb !== 1)) return original(args);
    const shape = broadcastShape(a.shape, b.shape);
    if (size(shape) !== Math.max(na, nb)) return original(args);
    const backend = args.backend as unknown as WasmBackend;
    const out = backend.makeOutput(shape, dtype);
    loop(
      backend.typedArrayFromHeap(a) as Float32Array,
      backend.typedArrayFromHeap(b) as Float32Array,
      backend.typedArrayFromHeap(out) as Float32Array | Uint8Array,
      na === 1 && nb !== 1 ? 0 : 1,
      nb === 1 && na !== 1 ? 0 : 1,
    );
    return out;
  };
}

/** acc[c] += sum over rows of x[row * inner + c]; four rows per pass over acc. */
function sumRows(x: Float32Array, rows: number, inner: number, acc: Float64Array): void {
  let r = 0;
  for (; r + 4 <= rows; r += 4) {
    const b0 = r * inner;
    const b1 = b0 + inner;
    const b2 = b1 + inner;
    const b3 = b2 + inner;
    for (let c = 0; c < inner; c++) acc[c]! += x[b0 + c]! + x[b1 + c]! + x[b2 + c]! + x[b3 + c]!;
  }
  for (; r < rows; r++) for (let c = 0, b = r * inner; c < inner; c++) acc[c]! += x[b + c]!;
}

/** out = x tiled reps times per axis: each block written once, then copied (doubling) along its axis. */
function tile(x: Heap, shape: number[], reps: number[], out: Heap): void {
  const rank = shape.length;
  if (rank === 0) {
    out.fill(x[0]!);
    return;
  }
  const outShape = shape.map((d, i) => d * reps[i]!);
  // outStride[i]: elements of out per step along axis i; inStride likewise for x.
  const outStride = new Array<number>(rank).fill(1);
  const inStride = new Array<number>(rank).fill(1);
  for (let i = rank - 2; i >= 0; i--) {
    outStride[i] = outStride[i + 1]! * outShape[i + 1]!;
    inStride[i] = inStride[i + 1]! * shape[i + 1]!;
  }
  const fill = (axis: number, src: number, dst: number) => {
    const block = shape[axis]! * outStride[axis]!; // one copy of x along this axis, already tiled inside
    if (axis === rank - 1) out.set(x.subarray(src, src + shape[axis]!), dst);
    else for (let i = 0; i < shape[axis]!; i++) fill(axis + 1, src + i * inStride[axis]!, dst + i * outStride[axis]!);
    const total = block * reps[axis]!;
    for (let done = block; done < total; done *= 2) out.copyWithin(dst + done, dst, dst + Math.min(done, total - done));
  };
  fill(0, 0, 0);
}
