import { closeSync, constants, fstatSync, openSync, readSync } from 'node:fs';
import { open } from 'node:fs/promises';
import type { Fit } from '@imgpipe/kit';
import { ImageRejected } from './image-rejected.js';
import { decodeJpegResized, decodesWithTurbo, SHRINK_ON_LOAD_FROM } from './jpeg-decode.js';
import { readJpegHeader } from './jpeg-header.js';
import { JPEG_TURBO_VERSION } from './jpeg-turbo.js';
import { RESIZE_IDENTITY } from './resize.js';
import { sniffImageFormat, type ImageFormat } from './image-format.js';
import { contentOf, realPathOf, type FileIdentity } from './file-identity.js';
import { sha256 } from '@imgpipe/kit/files';
import { loadSharp, openImage } from './sharp-module.js';

/**
 * Decoding for training and serving: any common image (JPEG, PNG, WebP, GIF first frame, TIFF first page), EXIF
 * orientation honoured, any colour space / alpha / grayscale / 16-bit input converted to 3-channel 8-bit sRGB,
 * resized to a square, as raw uint8 NHWC pixels. The common case, a plain JPEG photo, is decoded by libjpeg-turbo
 * and resized by imgpipe's own SIMD resize (jpeg-decode.ts, resize.ts): libvips' fixed cost per pipeline dominates
 * on small photos. Everything else goes through sharp (the only importer of sharp). prep-data and serve both decode
 * through `decodeToTensor`, so training and serving see the same pixels; `imagePipelineInfo` names both paths.
 */

export interface DecodeOptions {
  size: number;
  /** fill: stretch to size x size (the seed's way); cover: scale the short side to size, centre-crop the long one. */
  fit: Fit;
  /** Largest width x height accepted (from the header, before decoding); default DEFAULT_MAX_PIXELS. */
  maxPixels?: number;
  /** Accept only these formats, by the bytes' signature, checked before sharp sees them; default: what sharp reads. */
  formats?: readonly ImageFormat[];
  /** Give up on a decode that takes longer (libvips checks between stages); default: no limit. */
  timeoutSeconds?: number;
}

/** sharp's own default limit (0x3FFF squared): about 268 megapixels. */
export const DEFAULT_MAX_PIXELS = 0x3fff * 0x3fff;

/**
 * Declared pixels per byte of file above which an over-limit image is called a decompression bomb rather than just
 * too large. Real photos hold 1-20 pixels per byte (a heavily compressed JPEG up to about 50); a PNG of zeros, the
 * classic bomb, holds about 340 (deflate's 1,032:1 on 3-byte pixels), and a header promising more than its data holds
 * far more: 128 separates the two.
 */
const BOMB_PIXELS_PER_BYTE = 128;

/**
 * Files up to this size are read into memory and decoded from there. Given a path, libvips maps the file once per
 * pass (format sniff, header, decode) and every unmap interrupts all cores to flush their TLBs: measured at 8% of
 * prep-data's CPU time. Larger files (rare, and where holding them whole would cost memory) are decoded from disk, by
 * sharp: a small JPEG padded past this size would take sharp's path where the unpadded file takes libjpeg-turbo's.
 */
export const READ_WHOLE_MAX_BYTES = 64 * 1024 * 1024;

/**
 * The resize kernel: a triangle filter widened by the reduction factor, i.e. an antialiased bilinear resize. It is what
 * the seed's PIL `resize(..., BILINEAR)` computes (mean difference 0.2/255 on 500x375 photos) and costs a third of
 * lanczos3's taps. JPEGs sharp decodes additionally shrink by 2, 4 or 8 in the decoder when both axes are reduced at least
 * that much.
 */
export const RESIZE_KERNEL = 'linear';

/** Colour transparent pixels are flattened onto (white), recorded in dataset manifests. */
export const ALPHA_BACKGROUND = { r: 255, g: 255, b: 255 } as const;

export { ImageRejected, type RejectReason } from './image-rejected.js';

/** What the pipeline does, for manifests and model cards: two decoders that differ here give different pixels. */
export async function imagePipelineInfo(): Promise<Record<string, string | number | boolean>> {
  const sharp = await loadSharp();
  return {
    decoder: `sharp ${sharp.versions.sharp ?? '?'} (libvips ${sharp.versions.vips})`,
    jpeg_decoder: JPEG_TURBO_VERSION
      ? `libjpeg-turbo (@julusian/jpeg-turbo ${JPEG_TURBO_VERSION}, fast integer IDCT) then ${RESIZE_IDENTITY}, for 8-bit grey/YCbCr JPEGs without ICC profile or with an sRGB one, short side under ${SHRINK_ON_LOAD_FROM}x the size; others: sharp`
      : 'sharp',
    exif_orientation: true,
    colourspace: 'srgb',
    alpha_background: `rgb(${ALPHA_BACKGROUND.r},${ALPHA_BACKGROUND.g},${ALPHA_BACKGROUND.b})`,
    kernel: RESIZE_KERNEL,
    jpeg_shrink_on_load: true,
    first_frame_only: true,
    fail_on: 'truncated',
  };
}

export async function imageEngineVersions(): Promise<Record<string, string>> {
  const sharp = await loadSharp();
  return { sharp: sharp.versions.sharp ?? 'unknown', vips: sharp.versions.vips, ...(JPEG_TURBO_VERSION ? { 'jpeg-turbo': JPEG_TURBO_VERSION } : {}) };
}

/**
 * Tune sharp for many one-off decodes: its operation cache only helps repeated work on the same input, so a batch
 * tool turns it off to keep memory flat. `threads` is libvips' per-image thread count, left at sharp's default
 * (1 on glibc Linux without jemalloc, else the core count): parallelism comes from several decodes in flight.
 */
export async function tuneImageEngine(options: { cache?: boolean; threads?: number }): Promise<void> {
  const sharp = await loadSharp();
  if (options.cache !== undefined) sharp.cache(options.cache);
  if (options.threads !== undefined) sharp.concurrency(options.threads);
}

/** Decode, EXIF-rotate, convert to sRGB and resize: size*size*3 bytes, rows top to bottom, RGB interleaved. */
export function decodeToTensor(input: Buffer | string, options: DecodeOptions): Promise<Uint8Array> {
  return decodeImage(input, options, false);
}

/**
 * decodeToTensor for a thread that does nothing else (a decode worker, see decode-pool.ts): the file is read and a
 * plain JPEG decoded on the calling thread, without the round trips to libuv's thread pool. Same pixels, written into
 * `into` (size * size * 3 bytes) when given, so that a caller that reuses its buffers allocates nothing per image.
 */
export function decodeToTensorBlocking(input: Buffer | string, options: DecodeOptions, into?: Uint8Array): Promise<Uint8Array> {
  return decodeImage(input, options, true, into);
}

/** What a decode of a file found out about the file itself: see decodeFileIdentified. */
export interface IdentifiedDecode {
  identity: FileIdentity;
  /** The pixels, or why the image was rejected. */
  outcome: { pixels: Uint8Array } | { rejected: ImageRejected };
}

/**
 * decodeToTensorBlocking of a file together with the file's identity (identifyFile's real path and content sha256),
 * from the same read: one pass over the files where a caller needs both (prep-data's fresh builds). A rejection comes
 * back with the identity instead of being thrown; any other error is thrown.
 */
export async function decodeFileIdentified(path: string, options: DecodeOptions, into?: Uint8Array): Promise<IdentifiedDecode> {
  let content: string | undefined;
  let outcome: IdentifiedDecode['outcome'];
  try {
    outcome = { pixels: await decodeImage(path, options, true, into, (bytes) => (content = sha256(bytes))) };
  } catch (error) {
    if (!(error instanceof ImageRejected)) throw error;
    outcome = { rejected: error };
  }
  // Not read whole (larger than READ_WHOLE_MAX_BYTES, or not readable): hashed as identifyFile does.
  return { identity: { real: realPathOf(path), content: content ?? contentOf(path) }, outcome };
}

async function decodeImage(
  input: Buffer | string,
  options: DecodeOptions,
  blocking: boolean,
  into?: Uint8Array,
  onRead?: (bytes: Uint8Array) => void,
): Promise<Uint8Array> {
  const scratch = blocking && typeof input === 'string' ? takeReadScratch() : undefined;
  try {
    return await decodeRead(input, options, blocking, scratch, into, onRead);
  } finally {
    if (scratch) readScratch = scratch;
  }
}

/**
 * A read buffer for blocking decodes, reused: a fresh buffer per file is external memory that keeps V8 collecting
 * garbage (measured: a sixth of a decode thread's time). Taken while a decode uses it, so a second decode that
 * overlaps (while sharp works) reads into a buffer of its own.
 */
let readScratch: Buffer | undefined;
function takeReadScratch(): Buffer {
  const taken = readScratch ?? Buffer.allocUnsafe(1 << 20);
  readScratch = undefined;
  return taken;
}

async function decodeRead(
  input: Buffer | string,
  options: DecodeOptions,
  blocking: boolean,
  scratch: Buffer | undefined,
  into: Uint8Array | undefined,
  onRead: ((bytes: Uint8Array) => void) | undefined,
): Promise<Uint8Array> {
  const { size, fit } = options;
  const maxPixels = options.maxPixels ?? DEFAULT_MAX_PIXELS;
  const source = typeof input === 'string' ? input : 'image';
  const { data, bytes } =
    typeof input === 'string' ? (blocking ? readInputBlocking(input, scratch) : await readInput(input)) : { data: input, bytes: input.length };
  if (typeof data !== 'string') onRead?.(data);
  if (bytes === 0) throw new ImageRejected('empty', source, 'the file is empty (0 bytes)');
  if (options.formats && typeof data !== 'string') checkFormat(data, options.formats, source);
  const jpeg = typeof data === 'string' ? undefined : decodesWithTurbo(data, size, maxPixels);
  if (jpeg && typeof data !== 'string') return decodeJpegResized(data, jpeg, source, { size, fit, into }, blocking || undefined);
  try {
    const image = await openImage(data, { maxPixels, timeoutSeconds: options.timeoutSeconds });
    const { data: pixels, info } = await image
      .rotate()
      .flatten({ background: ALPHA_BACKGROUND })
      .toColourspace('srgb')
      .resize(size, size, { fit: fit === 'fill' ? 'fill' : 'cover', position: 'centre', kernel: RESIZE_KERNEL, fastShrinkOnLoad: true })
      .removeAlpha()
      .raw({ depth: 'uchar' })
      .toBuffer({ resolveWithObject: true });
    if (info.channels !== 3 || info.width !== size || info.height !== size || pixels.length !== size * size * 3) {
      throw new ImageRejected('unreadable', source, `decoded to ${info.width}x${info.height}x${info.channels}, expected ${size}x${size}x3`);
    }
    if (!into) return new Uint8Array(pixels.buffer, pixels.byteOffset, pixels.length);
    into.set(pixels);
    return into;
  } catch (error) {
    if (error instanceof ImageRejected) throw error;
    throw await rejectionOf(error, data, source, bytes, maxPixels);
  }
}

/** Refuse bytes whose signature is not one of `formats`, before any decoder sees them. */
export function checkFormat(bytes: Uint8Array, formats: readonly ImageFormat[], source = 'image'): ImageFormat {
  const format = sniffImageFormat(bytes);
  if (format === undefined) {
    const head = Buffer.from(bytes.subarray(0, 256)).toString('latin1');
    const other =
      /^\s*(<\?xml|<svg|<!DOCTYPE svg)/i.test(head) || /<svg[\s>]/i.test(head)
        ? 'svg'
        : /^....ftyp(avif|avis|heic|heix|mif1)/s.test(head)
          ? 'avif/heif'
          : head.startsWith('%PDF')
            ? 'pdf'
            : undefined;
    if (other) throw new ImageRejected('unsupported-format', source, `${other} is not accepted (accepted: ${formats.join(', ')})`);
    throw new ImageRejected('not-an-image', source, `not an image in an accepted format (${formats.join(', ')})`);
  }
  if (!formats.includes(format)) throw new ImageRejected('unsupported-format', source, `${format} is not accepted (accepted: ${formats.join(', ')})`);
  return format;
}

/** The file's bytes (or its path when over READ_WHOLE_MAX_BYTES) and its size; missing or odd files are rejected. */
async function readInput(path: string): Promise<{ data: Buffer | string; bytes: number }> {
  let handle: Awaited<ReturnType<typeof open>> | undefined;
  try {
    // O_NONBLOCK: a FIFO in place of an image must not block the open; regular files ignore the flag.
    handle = await open(path, constants.O_RDONLY | constants.O_NONBLOCK);
    const info = await handle.stat();
    if (!info.isFile()) throw new ImageRejected('not-an-image', path, 'not a regular file');
    if (info.size > READ_WHOLE_MAX_BYTES) return { data: path, bytes: info.size };
    const data = Buffer.allocUnsafe(info.size);
    let filled = 0;
    while (filled < data.length) {
      const { bytesRead } = await handle.read(data, filled, data.length - filled, filled);
      if (bytesRead === 0) break;
      filled += bytesRead;
    }
    return { data: data.subarray(0, filled), bytes: filled };
  } catch (error) {
    throw readRejection(error, path);
  } finally {
    await handle?.close();
  }
}

/** readInput on the calling thread, into `scratch` when the file fits. */
function readInputBlocking(path: string, scratch: Buffer | undefined): { data: Buffer | string; bytes: number } {
  let fd: number | undefined;
  try {
    fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
    const info = fstatSync(fd);
    if (!info.isFile()) throw new ImageRejected('not-an-image', path, 'not a regular file');
    if (info.size > READ_WHOLE_MAX_BYTES) return { data: path, bytes: info.size };
    const data = scratch && info.size <= scratch.length ? scratch.subarray(0, info.size) : Buffer.allocUnsafe(info.size);
    let filled = 0;
    while (filled < data.length) {
      const bytesRead = readSync(fd, data, filled, data.length - filled, filled);
      if (bytesRead === 0) break;
      filled += bytesRead;
    }
    return { data: data.subarray(0, filled), bytes: filled };
  } catch (error) {
    throw readRejection(error, path);
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

function readRejection(error: unknown, path: string): ImageRejected {
  if (error instanceof ImageRejected) return error;
  const code = (error as NodeJS.ErrnoException).code;
  if (code === 'ENOENT') return new ImageRejected('missing', path, 'no such file (check the local_image column or --dest)', { cause: error });
  return new ImageRejected('unreadable', path, `cannot read the file (${code ?? String(error)})`, { cause: error });
}

/** Why sharp failed on an input, as an ImageRejected with its reason (a bomb, too large, too slow, unreadable...). */
export async function rejectionOf(error: unknown, input: Buffer | string, source: string, bytes: number, maxPixels: number): Promise<ImageRejected> {
  const sharp = await loadSharp();
  const message = (error as Error)?.message ?? String(error);
  if (/unsupported image format/i.test(message)) {
    return new ImageRejected('not-an-image', source, 'not an image sharp can read (JPEG, PNG, WebP, GIF, TIFF, AVIF)', { cause: error });
  }
  if (/pixel limit/i.test(message)) {
    const meta = await sharp(input, { limitInputPixels: false })
      .metadata()
      .catch(() => undefined);
    const pixels = meta?.width && meta.height ? meta.width * meta.height : undefined;
    const dims = meta?.width && meta.height ? `${meta.width}x${meta.height}` : 'its header';
    if (pixels !== undefined && pixels / bytes > BOMB_PIXELS_PER_BYTE) {
      return new ImageRejected('decompression-bomb', source, `declares ${dims} pixels in only ${bytes} bytes`, { cause: error });
    }
    return new ImageRejected('too-large', source, `${dims} is over the limit of ${maxPixels} pixels`, { cause: error, hint: 'raise --max-pixels' });
  }
  if (/timeout/i.test(message))
    return new ImageRejected('too-slow', source, 'decoding took too long', { cause: error, hint: 'raise --decode-timeout' });
  // libvips keeps one error buffer for all threads, so with several decodes in flight its text can belong to
  // another image or be empty: a fixed detail keeps rejected.csv deterministic; the original stays as `cause`.
  const detail = 'cannot decode: truncated or corrupt image data';
  return new ImageRejected('unreadable', source, detail, { cause: error });
}

/** Width and height from the header alone (no pixel decoding), EXIF rotation ignored; undefined when unreadable. */
export async function imageDimensions(bytes: Buffer): Promise<{ width: number; height: number } | undefined> {
  // A JPEG's frame header says it without sharp (whose metadata() costs a pipeline: measured at 7% of serve's CPU).
  const jpeg = readJpegHeader(bytes);
  if (jpeg && jpeg.width > 0 && jpeg.height > 0) return { width: jpeg.width, height: jpeg.height };
  const sharp = await loadSharp();
  const meta = await sharp(bytes, { limitInputPixels: false })
    .metadata()
    .catch(() => undefined);
  return meta?.width && meta.height ? { width: meta.width, height: meta.height } : undefined;
}
