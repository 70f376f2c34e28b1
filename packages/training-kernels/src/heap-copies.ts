/**
 * Copies that reorder tensors on the TF.js wasm heap for the gradient kernels. The wasm Transpose and Reverse kernels
 * are slow on some of these shapes (Reverse of a [3, 3, 512, 512] filter 110 ms, Transpose of [100352, 24] 48 ms);
 * these loops take 2-5 ms there.
 */

/**
 * out[outOffset + c * rows + r] = input[inOffset + r * cols + c]: a [rows, cols] block transposed, walked in
 * blocks of 16 rows so that reads and writes both stay in cache.
 */
export function transposeInto(input: Float32Array, out: Float32Array, rows: number, cols: number, inOffset = 0, outOffset = 0): void {
  const block = 16;
  for (let r0 = 0; r0 < rows; r0 += block) {
    const rEnd = Math.min(rows, r0 + block);
    for (let c = 0; c < cols; c++) {
      let o = outOffset + c * rows + r0;
      for (let r = r0; r < rEnd; r++, o++) out[o] = input[inOffset + r * cols + c]!;
    }
  }
}

/** [a, b, row] -> [b, a, row]: the two leading axes swapped, rows of `row` values copied whole. */
export function swapLeadingAxes(input: Float32Array, out: Float32Array, a: number, b: number, row: number): void {
  for (let i = 0; i < a; i++)
    for (let j = 0; j < b; j++) {
      const from = (i * b + j) * row;
      out.set(input.subarray(from, from + row), (j * a + i) * row);
    }
}

/** A conv filter [fh, fw, ci, co] rotated 180 degrees with its channel axes swapped: [fh, fw, co, ci]. */
export function rotateFilter(filter: Float32Array, out: Float32Array, fh: number, fw: number, ci: number, co: number): void {
  const taps = fh * fw;
  for (let t = 0; t < taps; t++) transposeInto(filter, out, ci, co, t * ci * co, (taps - 1 - t) * co * ci);
}
