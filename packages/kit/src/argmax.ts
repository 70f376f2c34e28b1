/**
 * Index of the largest of `length` values starting at `offset`, counted from `offset`: the first one on ties, and
 * a NaN never wins. -1 when `length` is 0.
 */
export function argmax(values: ArrayLike<number>, offset = 0, length = values.length - offset): number {
  if (length <= 0) return -1;
  let best = 0;
  for (let i = 1; i < length; i++) if (values[offset + i]! > values[offset + best]!) best = i;
  return best;
}

/** The arg max of every row of a row-major count x `columns` array (e.g. a batch's class probabilities). */
export function argmaxRows(values: ArrayLike<number>, columns: number): Int32Array {
  const rows = Math.floor(values.length / columns);
  const out = new Int32Array(rows);
  for (let i = 0; i < rows; i++) out[i] = argmax(values, i * columns, columns);
  return out;
}
