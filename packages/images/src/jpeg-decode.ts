import { ImageRejected } from './image-rejected.js';
import { readJpegHeader } from './jpeg-header.js';
import { decodeJpegRgb, decodeJpegRgbInto, JPEG_TURBO_VERSION } from './jpeg-turbo.js';
import type { JpegHeader } from './jpeg-header.js';
import { orientRgb } from './orient.js';
import { prepareResize, resizeRgb } from './resize.js';
import type { Fit } from '@imgpipe/kit';

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
    throw new ImageRejected('unreadable', source, 'cannot decode: truncated or corrupt image data', { cause: error });
  }
  try {
    return use(orientRgb(decoded, header.orientation));
  } finally {
    decoded.release();
  }
}

/**
 * Decode an eligible JPEG (decodesWithTurbo gave its header) and resize it to size x size, into `into` when given.
 * Blocking decodes of upright pictures write straight into the resize's memory, saving a copy of the full-size
 * picture; the rest go through withJpegUpright. Same pixels either way.
 */
export async function decodeJpegResized(
  bytes: Buffer,
  header: JpegHeader,
  source: string,
  target: { size: number; fit: Fit; into?: Uint8Array | undefined },
  blocking?: boolean,
): Promise<Uint8Array> {
  const { size, fit, into } = target;
  const upright = header.orientation <= 1 || header.orientation > 8;
  if (!upright || !(blocking ?? header.width * header.height <= BLOCKING_DECODE_MAX_PIXELS)) {
    return withJpegUpright(bytes, header, source, (image) => resizeRgb(image.data, image.width, image.height, size, fit, into), blocking);
  }
  const prepared = prepareResize(header.width, header.height, size, fit);
  try {
    decodeJpegRgbInto(bytes, prepared.source);
  } catch (error) {
    throw new ImageRejected('unreadable', source, 'cannot decode: truncated or corrupt image data', { cause: error });
  }
  return prepared.run(into);
}

/**
 * Buffers that hold a picture from its decode until its echo is encoded (serve's views), reused through `release`:
 * a fresh half-megabyte buffer per request is external memory that keeps V8 collecting garbage, and fresh pages to
 * fault in (measured: half again the decode's time). Kept up to SPARE_VIEW_BYTES in all: a server has as many views
 * alive as images in flight.
 */
const spareViews: Buffer[] = [];
const SPARE_VIEW_BYTES = 64 * 1024 * 1024;
let spareViewBytes = 0;

/** A view of `width` x `height` RGB from the spare ones when one is large enough; `release` gives it back. */
function takeView(width: number, height: number): { data: Buffer; width: number; height: number; release(): void } {
  const bytes = width * height * 3;
  // The one given back last that fits: the likeliest to be in the CPU's caches still.
  const index = spareViews.findLastIndex((buffer) => buffer.length >= bytes);
  const buffer = index >= 0 ? spareViews.splice(index, 1)[0]! : Buffer.allocUnsafe(bytes);
  if (index >= 0) spareViewBytes -= buffer.length;
  let released = false;
  return {
    data: buffer.subarray(0, bytes),
    width,
    height,
    release() {
      if (released) return;
      released = true;
      if (spareViewBytes + buffer.length > SPARE_VIEW_BYTES) return;
      spareViews.push(buffer);
      spareViewBytes += buffer.length;
    },
  };
}

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
  const upright = header.orientation <= 1 || header.orientation > 8;
  if (!upright || header.width * header.height > BLOCKING_DECODE_MAX_PIXELS) {
    return withJpegUpright(bytes, header, source, (image) => ({
      pixels: resizeRgb(image.data, image.width, image.height, size, fit),
      view: { data: Buffer.from(image.data), width: image.width, height: image.height },
    }));
  }
  const view = takeView(header.width, header.height);
  try {
    decodeJpegRgbInto(bytes, view.data);
  } catch (error) {
    view.release();
    throw new ImageRejected('unreadable', source, 'cannot decode: truncated or corrupt image data', { cause: error });
  }
  return { pixels: resizeRgb(view.data, header.width, header.height, size, fit), view };
}
