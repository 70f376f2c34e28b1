import { createRequire } from 'node:module';
import type Sharp from 'sharp';
import type { Sharp as SharpImage } from 'sharp';

// sharp (libvips) loads on first use, so a tool's --help and usage errors stay instant. Through require: sharp's
// CommonJS build loads in 30 ms where its ES modules take 45-55 ms (Node 22, compile cache on), on the main thread
// before prep-data's first image and in each decode thread that meets a PNG.
const require = createRequire(import.meta.url);
let sharpModule: Promise<typeof Sharp> | undefined;
export function loadSharp(): Promise<typeof Sharp> {
  sharpModule ??= new Promise((resolve) => resolve(require('sharp') as typeof Sharp));
  return sharpModule;
}

/** A decode of untrusted bytes: the pixel limit, truncation as an error, one pass, and the timeout if any. */
export async function openImage(input: Buffer | string, limits: { maxPixels: number; timeoutSeconds?: number | undefined }): Promise<SharpImage> {
  const sharp = await loadSharp();
  const image = sharp(input, { limitInputPixels: limits.maxPixels, failOn: 'truncated', sequentialRead: true });
  if (limits.timeoutSeconds !== undefined) image.timeout({ seconds: Math.max(1, Math.ceil(limits.timeoutSeconds)) });
  return image;
}
