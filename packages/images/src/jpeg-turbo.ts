import { createRequire } from 'node:module';
import { SpareBuffers } from './spare-buffers.js';

/** The only importer of @julusian/jpeg-turbo: libjpeg-turbo's TurboJPEG API, prebuilt, decoding on libuv's threads. */
interface TurboJpeg {
  FORMAT_RGB: number;
  decompress(image: Buffer, out: Buffer, options: { format: number }): Promise<TurboDecoded>;
  decompressSync(image: Buffer, out: Buffer, options: { format: number }): TurboDecoded;
  compressSync(raw: Buffer, options: { format: number; width: number; height: number; quality: number; subsampling: number }): Buffer;
  compressSync(raw: Buffer, out: Buffer, options: { format: number; width: number; height: number; quality: number; subsampling: number }): Buffer;
  bufferSize(options: { width: number; height: number; subsampling: number }): number;
  SAMP_420: number;
}

interface TurboDecoded {
  data: Buffer;
  width: number;
  height: number;
}

const require = createRequire(import.meta.url);

/** Its prebuilt binary needs Node-API 10 (Node 22.14+); on older Node (which crashes loading it) there is none. */
export const JPEG_TURBO_VERSION: string | undefined =
  Number(process.versions.napi) >= 10 ? (require('@julusian/jpeg-turbo/package.json') as { version: string }).version : undefined;

let loaded: TurboJpeg | undefined;
const turboJpeg = (): TurboJpeg => (loaded ??= require('@julusian/jpeg-turbo') as TurboJpeg);

/** Output buffers to decode into, reused. */
const outputs = new SpareBuffers(64 * 1024 * 1024);

interface DecodedRgb {
  data: Uint8Array;
  width: number;
  height: number;
  /** Give the pixel buffer back for reuse; `data` must not be used after. */
  release(): void;
}

/**
 * Decode a JPEG of `pixels` pixels (from its header) to 8-bit RGB at full size; rejects on corrupt or truncated data.
 * `blocking` decodes on the calling thread: for a thread that does nothing else (a decode worker), it saves the two
 * hops to libuv's pool and back, which cost as much CPU as decoding a small photo.
 */
export async function decodeJpegRgb(bytes: Buffer, pixels: number, blocking = false): Promise<DecodedRgb> {
  const turbo = turboJpeg();
  const { buffer: out, release } = outputs.take(pixels * 3);
  try {
    const options = { format: turbo.FORMAT_RGB };
    const decoded = blocking ? turbo.decompressSync(bytes, out, options) : await turbo.decompress(bytes, out, options);
    const data = new Uint8Array(decoded.data.buffer, decoded.data.byteOffset, decoded.width * decoded.height * 3);
    return { data, width: decoded.width, height: decoded.height, release };
  } catch (error) {
    release();
    throw error;
  }
}

/**
 * Decode a JPEG to 8-bit RGB at full size on the calling thread, into `out` (exactly width * height * 3 bytes, from its
 * header), e.g. the source of a prepared resize; throws on corrupt or truncated data.
 */
export function decodeJpegRgbInto(bytes: Buffer, out: Uint8Array): void {
  const turbo = turboJpeg();
  const decoded = turbo.decompressSync(bytes, Buffer.from(out.buffer, out.byteOffset, out.byteLength), { format: turbo.FORMAT_RGB });
  if (decoded.width * decoded.height * 3 !== out.byteLength) throw new Error(`decoded ${decoded.width}x${decoded.height}, not the header's size`);
}

/**
 * Encode 8-bit RGB as a baseline JPEG (4:2:0, plain Huffman tables) on the calling thread: for serve's echo, where
 * sharp's pipeline costs more than the encoding itself for a photo-sized picture. Into `out` when given (large
 * enough: bufferSize), else into a new buffer; the result is a view of it.
 */
export function encodeJpegRgb(data: Uint8Array, width: number, height: number, quality: number, out?: Buffer): Buffer {
  const turbo = turboJpeg();
  const raw = Buffer.from(data.buffer, data.byteOffset, width * height * 3);
  const options = { format: turbo.FORMAT_RGB, width, height, quality, subsampling: turbo.SAMP_420 };
  return out ? turbo.compressSync(raw, out, options) : turbo.compressSync(raw, options);
}

/** The output buffer of encodeJpegRgbBase64, reused: its bytes become text before it returns. */
let encodeScratch: Buffer | undefined;

/**
 * encodeJpegRgb as base64 text, encoded into a reused buffer (a fresh one per call is external memory that keeps V8
 * collecting garbage: serve encodes one per request).
 */
export function encodeJpegRgbBase64(data: Uint8Array, width: number, height: number, quality: number): string {
  const turbo = turboJpeg();
  const bound = turbo.bufferSize({ width, height, subsampling: turbo.SAMP_420 });
  if (!encodeScratch || encodeScratch.length < bound) encodeScratch = Buffer.allocUnsafe(bound);
  return encodeJpegRgb(data, width, height, quality, encodeScratch).toString('base64');
}
