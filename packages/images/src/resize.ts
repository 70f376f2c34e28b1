import type { Fit } from '@imgpipe/kit';
import { WASM_BASE64 } from './resize-kernels-binary.js';
import { orientationWalk } from './orient.js';

/**
 * imgpipe's own resize of 8-bit RGB to a square: a triangle filter widened by the reduction factor (an antialiased
 * bilinear resize, as PIL's `resize(..., BILINEAR)` computes it), separable, in 2.14 fixed point. The vertical pass
 * runs sixteen bytes and two taps at a time in SIMD WebAssembly, the horizontal one five taps at a time for four pixels
 * (resize-kernels.wat). `fit`: fill stretches the whole picture; cover takes the
 * centred square of side min(width, height).
 */
export const RESIZE_IDENTITY = 'imgpipe triangle/1 (antialiased bilinear, 2.14 fixed point, vertical pass first)';

const PRECISION = 14;

interface Coefficients {
  starts: Int32Array;
  counts: Int32Array;
  weights: Int32Array;
  taps: number;
  /** The tables of the SIMD passes, made on first use (see verticalPairs and horizontalGroups). */
  pairs?: { table: Int16Array; maxPairs: number };
  groups?: { offsets: Int32Array; weights: Int16Array; groups: number };
}

/**
 * Axes seen lately, least recently used first. Photos come in a few hundred sizes (399 axis lengths among the bench's
 * 2,000), and building an axis's tables costs a twentieth of a photo's resize; an entry for a photo-sized axis is
 * about 20 KB.
 */
const coefficientCache = new Map<string, Coefficients>();
const CACHED_AXES = 512;

/** Weights of each output sample over the input samples of the window [offset, offset + span) of an axis. */
export function coefficients(inSize: number, outSize: number, offset: number, span: number): Coefficients {
  const key = `${inSize},${outSize},${offset},${span}`;
  const cached = coefficientCache.get(key);
  if (cached) {
    coefficientCache.delete(key);
    coefficientCache.set(key, cached);
    return cached;
  }
  const scale = span / outSize;
  const support = Math.max(1, scale);
  const taps = Math.ceil(support) * 2 + 1;
  const starts = new Int32Array(outSize);
  const counts = new Int32Array(outSize);
  const weights = new Int32Array(outSize * taps);
  const one = 1 << PRECISION;
  const window = new Float64Array(taps + 1);
  for (let o = 0; o < outSize; o++) {
    const centre = offset + (o + 0.5) * scale;
    let low = Math.max(0, Math.floor(centre - support));
    let high = Math.min(inSize, Math.ceil(centre + support));
    let total = 0;
    for (let i = low; i < high; i++) total += window[i - low] = Math.max(0, 1 - Math.abs((i + 0.5 - centre) / support));
    let first = 0;
    while (high - low - first > 1 && window[first] === 0) first++;
    while (high - low > first + 1 && window[high - low - 1] === 0) high--;
    const count = high - low - first;
    low += first;
    starts[o] = low;
    counts[o] = count;
    let sum = 0;
    for (let k = 0; k < count; k++) {
      const weight = Math.round((window[first + k]! / total) * one);
      weights[o * taps + k] = weight;
      sum += weight;
    }
    weights[o * taps + ((count - 1) >> 1)]! += one - sum;
  }
  const result: Coefficients = { starts, counts, weights, taps };
  if (coefficientCache.size >= CACHED_AXES) coefficientCache.delete(coefficientCache.keys().next().value!);
  coefficientCache.set(key, result);
  return result;
}

/** The vertical pass's weights two taps at a time: per output row, maxPairs vectors of i16 (w_a, w_b) x 4. */
function verticalPairs(c: Coefficients): { table: Int16Array; maxPairs: number } {
  if (c.pairs) return c.pairs;
  const { counts, weights, taps } = c;
  const maxPairs = (maxOf(counts) + 1) >> 1;
  const table = new Int16Array(counts.length * maxPairs * 8);
  for (let o = 0; o < counts.length; o++) {
    for (let k = 0; k < counts[o]!; k++) {
      const weight = weights[o * taps + k]!;
      const at = (o * maxPairs + (k >> 1)) * 8 + (k & 1);
      table[at] = table[at + 2] = table[at + 4] = table[at + 6] = weight;
    }
  }
  c.pairs = { table, maxPairs };
  return c.pairs;
}

function maxOf(values: Int32Array): number {
  let max = 0;
  for (const value of values) if (value > max) max = value;
  return max;
}

/**
 * The horizontal pass's tables: each output sample's byte offset in the row, and its weights five taps at a time, as
 * two vectors of i16 per group, (w0 w1 w0 w1 w0 w1 w2 w3) and (w2 w3 w2 w3 w4 w4 w4 0); taps past its count weigh 0.
 */
export function horizontalGroups(c: Coefficients): { offsets: Int32Array; weights: Int16Array; groups: number } {
  if (c.groups) return c.groups;
  const { counts, starts, taps } = c;
  const groups = Math.ceil(maxOf(counts) / 5);
  const offsets = new Int32Array(counts.length);
  const weights = new Int16Array(counts.length * groups * 16);
  const w = new Int32Array(5);
  for (let o = 0; o < counts.length; o++) {
    offsets[o] = starts[o]! * 3;
    for (let g = 0; g < groups; g++) {
      for (let k = 0; k < 5; k++) w[k] = 5 * g + k < counts[o]! ? c.weights[o * taps + 5 * g + k]! : 0;
      const at = (o * groups + g) * 16;
      weights[at] = weights[at + 2] = weights[at + 4] = w[0]!;
      weights[at + 1] = weights[at + 3] = weights[at + 5] = w[1]!;
      weights[at + 6] = weights[at + 8] = weights[at + 10] = w[2]!;
      weights[at + 7] = weights[at + 9] = weights[at + 11] = w[3]!;
      weights[at + 12] = weights[at + 13] = weights[at + 14] = w[4]!;
    }
  }
  c.groups = { offsets, weights, groups };
  return c.groups;
}

// Node's WebAssembly global, typed here: the project's lib settings (ES2023, no DOM) leave it out.
declare const WebAssembly: { Module: new (bytes: Uint8Array) => object; Instance: new (module: object) => { exports: unknown } };

interface Kernels {
  memory: { buffer: ArrayBuffer; grow(pages: number): number };
  vertical(
    src: number,
    srcStride: number,
    dst: number,
    dstStride: number,
    rows: number,
    bytes: number,
    starts: number,
    counts: number,
    pairs: number,
    maxPairs: number,
  ): void;
  horizontal(src: number, srcStride: number, dst: number, rows: number, width: number, offsets: number, weights: number, groups: number): void;
  horizontal5(src: number, srcStride: number, dst: number, rows: number, width: number, offsets: number, weights: number): void;
  orient(src: number, dst: number, width: number, height: number, first: number, step: number, rowStep: number): void;
}

let kernels: Kernels | undefined;
function loadKernels(): Kernels {
  kernels ??= new WebAssembly.Instance(new WebAssembly.Module(Buffer.from(WASM_BASE64, 'base64'))).exports as unknown as Kernels;
  return kernels;
}

const align16 = (n: number) => (n + 15) & ~15;

/** A resize whose source pixels are written straight into the kernels' memory (see prepareResize). */
interface PreparedResize {
  /**
   * width * height * 3 bytes for the source pixels as stored (rows top to bottom, unpadded), valid until `run`, which
   * turns them upright first when an orientation was given.
   */
  source: Uint8Array;
  /** Resize into `into` (size * size * 3 bytes) when given, else into a new array; returns the pixels. */
  run(into?: Uint8Array): Uint8Array;
}

/** Bumped by every prepareResize: the kernels have one memory, so only the latest prepared resize may run. */
let generation = 0;

/**
 * Lay out a resize of width x height RGB pixels to size x size in the kernels' memory. The caller writes the source
 * pixels into `source` (a decoder can write there directly, saving a copy of the full-size picture) and calls `run`
 * before preparing another resize. With an EXIF `orientation` (2-8), `source` takes the picture as stored and `run`
 * resizes it upright (as orientRgb turns it).
 */
export function prepareResize(storedWidth: number, storedHeight: number, size: number, fit: Fit, orientation = 1): PreparedResize {
  const walk = orientation >= 2 && orientation <= 8 ? orientationWalk(orientation, storedWidth, storedHeight) : undefined;
  const [width, height] = walk ? [walk.width, walk.height] : [storedWidth, storedHeight];
  const side = Math.min(width, height);
  const [spanX, spanY] = fit === 'cover' ? [side, side] : [width, height];
  const horizontal = coefficients(width, size, (width - spanX) / 2, spanX);
  const vertical = coefficients(height, size, (height - spanY) / 2, spanY);
  const rowBytes = width * 3;
  // The vertical pass works in whole 16-byte groups: it reads up to 15 bytes past a source row (the next row's, or
  // the spare bytes after the last one) and writes rows of `stride` bytes. For an odd number of taps it also reads
  // the row after the last one, weighted 0: past the source, that is the vertical pass's own rows, laid out next.
  const stride = align16(rowBytes);
  const pairs = verticalPairs(vertical);
  const columns = horizontalGroups(horizontal);
  // Memory: source rows, the vertical pass's rows, the output (with spare bytes for the 4-byte stores), the
  // coefficient tables, then the picture as stored when it is turned upright into the source rows first.
  const layout = [
    rowBytes * height + 16,
    stride * size + 16,
    size * size * 3 + 16,
    vertical.starts.byteLength,
    vertical.counts.byteLength,
    pairs.table.byteLength,
    columns.offsets.byteLength,
    columns.weights.byteLength,
    walk ? rowBytes * height + 16 : 0,
  ];
  const offsets: number[] = [];
  let end = 0;
  for (const bytes of layout) {
    offsets.push(end);
    end += align16(bytes);
  }
  const k = loadKernels();
  const missing = end - k.memory.buffer.byteLength;
  if (missing > 0) k.memory.grow(Math.ceil(missing / 65536));
  const heap = new Uint8Array(k.memory.buffer);
  const [src, mid, out, vStarts, vCounts, vPairs, hOffsets, hWeights, stored] = offsets as [
    number,
    number,
    number,
    number,
    number,
    number,
    number,
    number,
    number,
  ];
  const put = (table: Int32Array | Int16Array, at: number) => heap.set(new Uint8Array(table.buffer, table.byteOffset, table.byteLength), at);
  put(vertical.starts, vStarts);
  put(vertical.counts, vCounts);
  put(pairs.table, vPairs);
  put(columns.offsets, hOffsets);
  put(columns.weights, hWeights);
  const prepared = ++generation;
  return {
    source: walk ? heap.subarray(stored, stored + rowBytes * height) : heap.subarray(src, src + rowBytes * height),
    run(into?: Uint8Array): Uint8Array {
      if (prepared !== generation) throw new Error('resize: another resize was prepared before this one ran');
      if (into && into.length !== size * size * 3) throw new RangeError(`resize: expected a ${size * size * 3}-byte target, got ${into.length}`);
      if (walk) k.orient(stored, src, width, height, walk.first, walk.step, walk.rowStep);
      k.vertical(src, rowBytes, mid, stride, size, stride, vStarts, vCounts, vPairs, pairs.maxPairs);
      if (columns.groups === 1) k.horizontal5(mid, stride, out, size, size, hOffsets, hWeights);
      else k.horizontal(mid, stride, out, size, size, hOffsets, hWeights, columns.groups);
      const result = heap.subarray(out, out + size * size * 3);
      if (!into) return result.slice();
      into.set(result);
      return into;
    },
  };
}

/** Resize width x height RGB pixels (rows top to bottom) to size x size: size * size * 3 bytes, in `into` when given. */
export function resizeRgb(pixels: Uint8Array, width: number, height: number, size: number, fit: Fit, into?: Uint8Array): Uint8Array {
  if (pixels.length < width * height * 3)
    throw new RangeError(`resizeRgb: expected ${width * height * 3} bytes for ${width}x${height}, got ${pixels.length}`);
  const prepared = prepareResize(width, height, size, fit);
  prepared.source.set(pixels.subarray(0, width * height * 3));
  return prepared.run(into);
}
