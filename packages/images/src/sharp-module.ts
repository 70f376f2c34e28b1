import type Sharp from 'sharp';
import type { Sharp as SharpImage } from 'sharp';

// sharp (libvips) loads on first use, so a tool's --help and usage errors stay instant.
let sharpModule: Promise<typeof Sharp> | undefined;
export function loadSharp(): Promise<typeof Sharp> {
  sharpModule ??= import('sharp').then((module) => module.default);
  return sharpModule;
}

/** A decode of untrusted bytes: the pixel limit, truncation as an error, one pass, and the timeout if any. */
export async function openImage(input: Buffer | string, limits: { maxPixels: number; timeoutSeconds?: number | undefined }): Promise<SharpImage> {
  const sharp = await loadSharp();
  const image = sharp(input, { limitInputPixels: limits.maxPixels, failOn: 'truncated', sequentialRead: true });
  if (limits.timeoutSeconds !== undefined) image.timeout({ seconds: Math.max(1, Math.ceil(limits.timeoutSeconds)) });
  return image;
}
