import { ImageRejected } from './image-rejected.js';
import { readJpegHeader } from './jpeg-header.js';
import { decodeJpegRgb, decodeJpegRgbInto, JPEG_TURBO_VERSION } from './jpeg-turbo.js';
import type { JpegHeader } from './jpeg-header.js';
import { orientRgb } from './orient.js';
import { prepareResize, resizeRgb } from './resize.js';
import type { Fit } from '@imgpipe/kit';
import { SpareBuffers } from './spare-buffers.js';

/**
 * Largest JPEG decoded by libjpeg-turbo at full size; larger ones go through sharp, whose decoder shrinks them by
 * 2, 4 or 8 on load and honours --decode-timeout.
 */
const TURBO_MAX_PIXELS = 16_000_000;

/**
 * Short side, in model sizes, from which sharp decodes a JPEG instead: its decoder then shrinks by 4 or 8 on load,
 * cheaper than a full decode (measured on photos: at 2x a full decode and resize costs half of sharp's pipeline).
 */
export const SHRINK_ON_LOAD_FROM = 4;

/**
 * The JPEGs libjpeg-turbo decodes at full size for imgpipe's own resize: 8-bit Huffman-coded (baseline or
 * progressive) grey or YCbCr, without an ICC profile or with an sRGB one, within the pixel limit, whose short side is
 * under SHRINK_ON_LOAD_FROM times the model size. The rest keep sharp's pipeline.
 */
export function decodesWithTurbo(bytes: Uint8Array, size: number, maxPixels: number): ReturnType<typeof readJpegHeader> {
  if (JPEG_TURBO_VERSION === undefined) return undefined;
  const header = readJpegHeader(bytes);
  if (header?.precision !== 8 || header.coding === 'other' || header.icc === 'other') return undefined;
  if (!(header.components === 1 || (header.components === 3 && (header.adobeTransform ?? 1) === 1))) return undefined;
  const pixels = header.width * header.height;
  if (pixels === 0 || pixels > maxPixels || pixels > TURBO_MAX_PIXELS) return undefined;
  if (Math.min(header.width, header.height) / size >= SHRINK_ON_LOAD_FROM) return undefined;
  return header;
}

/**
 * JPEGs up to this many pixels (a few milliseconds of work) are decoded on the calling thread unless told otherwise:
 * handing a photo to libuv's pool and back costs about as much CPU as decoding it. Larger ones go to the pool, so as
 * not to hold up the thread (serve's event loop).
 */
const BLOCKING_DECODE_MAX_PIXELS = 2_000_000;

/** Whether a JPEG is decoded on the calling thread, straight into a buffer of the caller's. */
function decodesInPlace(header: JpegHeader, blocking: boolean | undefined): boolean {
  return blocking ?? header.width * header.height <= BLOCKING_DECODE_MAX_PIXELS;
}

const upright = (header: JpegHeader) => header.orientation <= 1 || header.orientation > 8;

function corrupt(source: string, error: unknown): ImageRejected {
  return new ImageRejected('unreadable', source, 'cannot decode: truncated or corrupt image data', { cause: error });
}

/**
 * Decode an eligible JPEG (decodesWithTurbo gave its header) and hand the upright full-size RGB to `use`, whose
 * result is returned; the pixels are only valid during `use`. Corrupt or truncated data is rejected. `blocking`
 * (default: by BLOCKING_DECODE_MAX_PIXELS): decode on the calling thread.
 */
async function withJpegUpright<T>(
  bytes: Buffer,
  header: JpegHeader,
  source: string,
  use: (image: { data: Uint8Array; width: number; height: number }) => T,
  blocking?: boolean,
): Promise<T> {
  let decoded: Awaited<ReturnType<typeof decodeJpegRgb>>;
  const pixels = header.width * header.height;
  try {
    decoded = await decodeJpegRgb(bytes, pixels, blocking ?? pixels <= BLOCKING_DECODE_MAX_PIXELS);
  } catch (error) {
    throw corrupt(source, error);
  }
  try {
    return use(orientRgb(decoded, header.orientation));
  } finally {
    decoded.release();
  }
}

/**
 * Decode an eligible JPEG (decodesWithTurbo gave its header) and resize it to size x size, into `into` when given.
 * Blocking decodes write straight into the resize's memory, which turns the picture upright itself, saving a copy (and
 * for a rotated one an allocation) of the full-size picture; the rest go through withJpegUpright. Same pixels either
 * way.
 */
export async function decodeJpegResized(
  bytes: Buffer,
  header: JpegHeader,
  source: string,
  target: { size: number; fit: Fit; into?: Uint8Array | undefined },
  blocking?: boolean,
): Promise<Uint8Array> {
  const { size, fit, into } = target;
  if (!decodesInPlace(header, blocking)) {
    return withJpegUpright(bytes, header, source, (image) => resizeRgb(image.data, image.width, image.height, size, fit, into), blocking);
  }
  const prepared = prepareResize(header.width, header.height, size, fit, header.orientation);
  try {
    decodeJpegRgbInto(bytes, prepared.source);
  } catch (error) {
    throw corrupt(source, error);
  }
  return prepared.run(into);
}

/** Buffers that hold a picture from its decode until its echo is encoded (serve's views): as many are in use as images in flight. */
const views = new SpareBuffers(64 * 1024 * 1024);

/**
 * An eligible JPEG's model input (as decodeJpegResized gives it) and its upright full-size picture, for drawing on.
 * An upright picture small enough to decode on the calling thread is decoded straight into the view's buffer, which
 * `release` gives back for reuse once the caller is done with it.
 */
export async function decodeJpegWithView(
  bytes: Buffer,
  header: JpegHeader,
  source: string,
  target: { size: number; fit: Fit },
): Promise<{ pixels: Uint8Array; view: { data: Buffer; width: number; height: number; release?(): void } }> {
  const { size, fit } = target;
  const { width, height } = header;
  if (!upright(header) || !decodesInPlace(header, undefined)) {
    return withJpegUpright(bytes, header, source, (image) => ({
      pixels: resizeRgb(image.data, image.width, image.height, size, fit),
      view: { data: Buffer.from(image.data), width: image.width, height: image.height },
    }));
  }
  const { buffer, release } = views.take(width * height * 3);
  const data = buffer.subarray(0, width * height * 3);
  try {
    decodeJpegRgbInto(bytes, data);
  } catch (error) {
    release();
    throw corrupt(source, error);
  }
  return { pixels: resizeRgb(data, width, height, size, fit), view: { data, width, height, release } };
}
