/**
 * Mirror `count` square images of size x size RGB uint8 NHWC left to right (a horizontal flip), into a new
 * array: the one flip that train --augment flip, eval-model --tta flip and serve --tta flip all use.
 */
export function mirrorImages(pixels: Uint8Array, count: number, size: number): Uint8Array {
  const row = size * 3;
  if (pixels.length !== count * size * row)
    throw new RangeError(`mirrorImages: expected ${count} images of ${size}x${size}x3 (${count * size * row} bytes), got ${pixels.length}`);
  const out = new Uint8Array(pixels.length);
  for (let start = 0; start < pixels.length; start += row) {
    for (let x = 0, from = start + row - 3; x < row; x += 3, from -= 3) {
      out[start + x] = pixels[from]!;
      out[start + x + 1] = pixels[from + 1]!;
      out[start + x + 2] = pixels[from + 2]!;
    }
  }
  return out;
}
