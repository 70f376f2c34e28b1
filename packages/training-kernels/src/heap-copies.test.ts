import assert from 'node:assert/strict';
import { test } from 'node:test';
import { rotateFilter, swapLeadingAxes, transposeInto } from './heap-copies.js';

const counting = (n: number) => Float32Array.from({ length: n }, (_, i) => i);

test('transposeInto: any row count (not only whole blocks of 16), at offsets, leaving the rest alone', () => {
  const [rows, cols] = [37, 5];
  const input = counting(3 + rows * cols);
  const out = new Float32Array(2 + rows * cols).fill(-1);
  transposeInto(input, out, rows, cols, 3, 2);
  assert.deepEqual([out[0], out[1]], [-1, -1]);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) assert.equal(out[2 + c * rows + r], input[3 + r * cols + c], `[${r}, ${c}]`);
});

test('swapLeadingAxes: [a, b, row] -> [b, a, row]', () => {
  const input = counting(2 * 3 * 4);
  const out = new Float32Array(input.length);
  swapLeadingAxes(input, out, 2, 3, 4);
  for (let i = 0; i < 2; i++)
    for (let j = 0; j < 3; j++) for (let k = 0; k < 4; k++) assert.equal(out[(j * 2 + i) * 4 + k], input[(i * 3 + j) * 4 + k]);
});

test('rotateFilter: [fh, fw, ci, co] -> rotated 180 degrees, [fh, fw, co, ci]', () => {
  const [fh, fw, ci, co] = [2, 3, 4, 5];
  const filter = counting(fh * fw * ci * co);
  const out = new Float32Array(filter.length);
  rotateFilter(filter, out, fh, fw, ci, co);
  for (let a = 0; a < fh; a++)
    for (let b = 0; b < fw; b++)
      for (let c = 0; c < ci; c++)
        for (let o = 0; o < co; o++)
          assert.equal(out[((a * fw + b) * co + o) * ci + c], filter[(((fh - 1 - a) * fw + (fw - 1 - b)) * ci + c) * co + o]);
});
