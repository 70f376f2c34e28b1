/**
 * EXIF orientation (1-8), as viewers and sharp's rotate() apply it: 2 mirror, 3 rotate 180, 4 flip, 5 transpose,
 * 6 rotate 90 clockwise, 7 transverse, 8 rotate 90 anticlockwise.
 */

/**
 * How to read a stored w x h RGB picture upright: the upright size, and where each upright pixel (x', y') is in the
 * stored bytes, first + y' * rowStep + x' * step (byte offsets; steps may be negative).
 */
export function orientationWalk(
  orientation: number,
  w: number,
  h: number,
): { width: number; height: number; first: number; step: number; rowStep: number } {
  // Stored x and y as a + b * x' + c * y' for the upright pixel (x', y').
  const [xa, xb, xc, ya, yb, yc] = (
    {
      2: [w - 1, -1, 0, 0, 0, 1],
      3: [w - 1, -1, 0, h - 1, 0, -1],
      4: [0, 1, 0, h - 1, 0, -1],
      5: [0, 0, 1, 0, 1, 0],
      6: [0, 0, 1, h - 1, -1, 0],
      7: [w - 1, 0, -1, h - 1, -1, 0],
      8: [w - 1, 0, -1, 0, 1, 0],
    } as Record<number, [number, number, number, number, number, number]>
  )[orientation] ?? [0, 1, 0, 0, 0, 1];
  const swap = orientation >= 5 && orientation <= 8;
  return {
    width: swap ? h : w,
    height: swap ? w : h,
    first: (ya * w + xa) * 3,
    step: (yb * w + xb) * 3,
    rowStep: (yc * w + xc) * 3,
  };
}

/** Turn decoded RGB upright by its EXIF orientation, into a new array (the picture itself when already upright). */
export function orientRgb(
  image: { data: Uint8Array; width: number; height: number },
  orientation: number,
): { data: Uint8Array; width: number; height: number } {
  if (orientation <= 1 || orientation > 8) return image;
  const { data } = image;
  const { width, height, first, step, rowStep } = orientationWalk(orientation, image.width, image.height);
  const out = new Uint8Array(width * height * 3);
  let o = 0;
  for (let y = 0; y < height; y++) {
    for (let x = 0, i = first + y * rowStep; x < width; x++, o += 3, i += step) {
      out[o] = data[i]!;
      out[o + 1] = data[i + 1]!;
      out[o + 2] = data[i + 2]!;
    }
  }
  return { data: out, width, height };
}
