import type { TensorInfo } from '@tensorflow/tfjs-core';
import type { WasmBackend } from './wasm-kernel-types.js';
import { columnsInside, type ConvGeometry } from './wasm-kernel-parts.js';
import { WASM_BASE64 } from './wasm-training-kernels-binary.js';

/**
 * The loops of wasm-training-kernels.wat, instantiated on a TF.js WebAssembly backend's own memory so that they work
 * on its tensors in place (about 4x a JavaScript loop over the same heap). Scratch vectors are malloc'd on that heap
 * for the call. Channel counts that are not a multiple of 4 run the same arithmetic in JavaScript.
 */
interface SimdLoops {
  /** Per channel of rows x channels data: [sum of a, sum of a * b], in f64. */
  sums(a: TensorInfo, b: TensorInfo, rows: number, channels: number): [Float64Array, Float64Array];
  /** out = a * p + b * q + k, with p, q, k per channel. */
  affine(a: TensorInfo, b: TensorInfo, out: TensorInfo, rows: number, channels: number, p: Float32Array, q: Float32Array, k: Float32Array): void;
  /** dx = dy where 0 < y < 6, else 0. */
  relu6Grad(dy: TensorInfo, y: TensorInfo, dx: TensorInfo, n: number): void;
  /**
   * The filter gradient of a depthwise conv with multiplier 1 and channels a multiple of 4 (else undefined), per tap
   * and channel [fh * fw * C], in f64: each output row's sum is f32, the sum of the rows f64.
   */
  depthwiseFilterGradient(x: TensorInfo, dy: TensorInfo, g: DepthwiseGeometry): Float64Array | undefined;
}

/** A depthwise conv's shape: n images of C channels, output oh x ow. */
export type DepthwiseGeometry = ConvGeometry & { n: number; C: number; oh: number; ow: number };

type Exports = {
  sums(a: number, b: number, rows: number, channels: number, acc: number): void;
  affine(a: number, b: number, out: number, rows: number, channels: number, p: number, q: number, k: number): void;
  relu6Grad(dy: number, y: number, dx: number, n: number): void;
  tapSums(x: number, dy: number, acc: number, count: number, xStep: number, channels: number): void;
};
// The WebAssembly global, as far as it is used here (Node's types leave it to the DOM library).
type Memory = { readonly buffer: ArrayBuffer };
declare const WebAssembly: {
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object, imports: { env: { memory: Memory } }) => { exports: unknown };
};
type EmscriptenModule = { asm: { memory: Memory }; _malloc(bytes: number): number; _free(pointer: number): void };

let compiled: object | undefined;
const instances = new WeakMap<Memory, SimdLoops>();

export function simdLoops(backend: WasmBackend): SimdLoops {
  const module = (backend as unknown as { wasm: EmscriptenModule }).wasm;
  const memory = module.asm?.memory;
  if (!memory)
    throw new Error('this @tensorflow/tfjs-backend-wasm does not expose its memory as Module.asm.memory (imgpipe is built against 4.22.0)');
  let loops = instances.get(memory);
  if (!loops) {
    compiled ??= new WebAssembly.Module(Buffer.from(WASM_BASE64, 'base64'));
    const exports = new WebAssembly.Instance(compiled, { env: { memory } }).exports as unknown as Exports;
    loops = bind(backend, module, exports);
    instances.set(memory, loops);
  }
  return loops;
}

function bind(backend: WasmBackend, module: EmscriptenModule, wasm: Exports): SimdLoops {
  const at = (t: TensorInfo) => backend.typedArrayFromHeap(t).byteOffset;
  const heap = () => module.asm.memory.buffer;
  /** A scratch block of the heap for one call; views are taken after malloc, which can grow (and detach) the heap. */
  const withScratch = <T>(bytes: number, use: (pointer: number) => T): T => {
    const pointer = module._malloc(bytes);
    if (!pointer) throw new Error(`TF.js wasm heap: cannot allocate ${bytes} bytes`);
    try {
      return use(pointer);
    } finally {
      module._free(pointer);
    }
  };
  return {
    sums(a, b, rows, channels) {
      if (channels % 4 !== 0) return sumsInJs(backend.typedArrayFromHeap(a), backend.typedArrayFromHeap(b), rows, channels);
      return withScratch(16 * channels, (acc) => {
        new Float64Array(heap(), acc, 2 * channels).fill(0);
        wasm.sums(at(a), at(b), rows, channels, acc);
        const sums = new Float64Array(heap(), acc, 2 * channels);
        return [sums.slice(0, channels), sums.slice(channels)];
      });
    },
    affine(a, b, out, rows, channels, p, q, k) {
      if (channels % 4 !== 0) {
        affineInJs(backend.typedArrayFromHeap(a), backend.typedArrayFromHeap(b), backend.typedArrayFromHeap(out), channels, p, q, k);
        return;
      }
      withScratch(12 * channels, (vectors) => {
        const view = new Float32Array(heap(), vectors, 3 * channels);
        view.set(p, 0);
        view.set(q, channels);
        view.set(k, 2 * channels);
        wasm.affine(at(a), at(b), at(out), rows, channels, vectors, vectors + 4 * channels, vectors + 8 * channels);
      });
    },
    relu6Grad(dy, y, dx, n) {
      wasm.relu6Grad(at(dy), at(y), at(dx), n);
    },
    depthwiseFilterGradient(x, dy, g) {
      const { n, H, W, C, oh, ow, fh, fw, sh, sw, dh, dw, top, left } = g;
      if (C % 4 !== 0) return undefined;
      const taps = fh * fw;
      return withScratch(8 * taps * C, (acc) => {
        new Float64Array(heap(), acc, taps * C).fill(0);
        const [xAt, dyAt] = [at(x), at(dy)];
        for (let e = 0; e < fw; e++) {
          const [jFrom, jTo] = columnsInside(ow, sw, e * dw - left, W);
          if (jTo === jFrom) continue;
          const column = jFrom * sw + e * dw - left;
          for (let b = 0; b < n; b++)
            for (let i = 0; i < oh; i++)
              for (let a = 0; a < fh; a++) {
                const r = i * sh + a * dh - top;
                if (r < 0 || r >= H) continue;
                const xRow = xAt + 4 * ((b * H + r) * W + column) * C;
                const dyRow = dyAt + 4 * ((b * oh + i) * ow + jFrom) * C;
                wasm.tapSums(xRow, dyRow, acc + 8 * (a * fw + e) * C, jTo - jFrom, 4 * sw * C, C);
              }
        }
        return new Float64Array(heap(), acc, taps * C).slice();
      });
    },
  };
}

function sumsInJs(a: Float32Array, b: Float32Array, rows: number, channels: number): [Float64Array, Float64Array] {
  const s = new Float64Array(channels);
  const t = new Float64Array(channels);
  for (let i = 0; i < rows * channels; i += channels) {
    for (let c = 0; c < channels; c++) {
      s[c]! += a[i + c]!;
      t[c]! += a[i + c]! * b[i + c]!;
    }
  }
  return [s, t];
}

function affineInJs(a: Float32Array, b: Float32Array, out: Float32Array, channels: number, p: Float32Array, q: Float32Array, k: Float32Array): void {
  for (let i = 0; i < out.length; i += channels) for (let c = 0; c < channels; c++) out[i + c] = a[i + c]! * p[c]! + b[i + c]! * q[c]! + k[c]!;
}
