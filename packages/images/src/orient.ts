/**
 * Turn decoded RGB upright by its EXIF orientation (1-8), as viewers and sharp's rotate() do: 2 mirror, 3 rotate
 * 180, 4 flip, 5 transpose, 6 rotate 90 clockwise, 7 transverse, 8 rotate 90 anticlockwise.
 */
export function orientRgb(
  image: { data: Uint8Array; width: number; height: number },
  orientation: number,
): { data: Uint8Array; width: number; height: number } {
  if (orientation <= 1 || orientation > 8) return image;
  const { data, width: w, height: h } = image;
  const swap = orientation >= 5;
  const [width, height] = swap ? [h, w] : [w, h];
  const out = new Uint8Array(width * height * 3);
  // Source x and y as a + b * x' + c * y' for the upright pixel (x', y').
  const [xa, xb, xc, ya, yb, yc] = {
    2: [w - 1, -1, 0, 0, 0, 1],
    3: [w - 1, -1, 0, h - 1, 0, -1],
    4: [0, 1, 0, h - 1, 0, -1],
    5: [0, 0, 1, 0, 1, 0],
    6: [0, 0, 1, h - 1, -1, 0],
    7: [w - 1, 0, -1, h - 1, -1, 0],
    8: [w - 1, 0, -1, 0, 1, 0],
  }[orientation as 2 | 3 | 4 | 5 | 6 | 7 | 8] as [number, number, number, number, number, number];
  // Along an output row the source index moves by a fixed step: no multiplication per pixel.
  const step = (yb * w + xb) * 3;
  let o = 0;
  for (let y = 0; y < height; y++) {
    let i = ((ya + yc * y) * w + xa + xc * y) * 3;
    for (let x = 0; x < width; x++, o += 3, i += step) {
      out[o] = data[i]!;
      out[o + 1] = data[i + 1]!;
      out[o + 2] = data[i + 2]!;
    }
  }
  return { data: out, width, height };
}
