import {
  ALPHA_BACKGROUND,
  checkFormat,
  DEFAULT_MAX_PIXELS,
  decodeToTensor,
  ImageRejected,
  RESIZE_KERNEL,
  rejectionOf,
  type DecodeOptions,
} from './image.js';
import { decodeJpegWithView, decodesWithTurbo } from './jpeg-decode.js';
import { encodeJpegRgb, encodeJpegRgbBase64, JPEG_TURBO_VERSION } from './jpeg-turbo.js';
import { escapeXml } from '@imgpipe/kit';
import { sniffImageFormat, type ImageFormat } from './image-format.js';
import { loadSharp, openImage } from './sharp-module.js';

/** Decoded pixels: rows top to bottom, RGB interleaved, 8 bits. */
export interface RgbImage {
  data: Buffer;
  width: number;
  height: number;
  /** Give the buffer back for reuse (when it came from one kept for that); `data` must not be used after. */
  release?(): void;
}

export interface ModelInputAndView {
  /** Exactly what decodeToTensor gives for the same bytes and options. */
  pixels: Uint8Array;
  /**
   * The picture as people see it (EXIF rotation applied, sRGB), at most maxViewPixels: for drawing on. Missing when
   * only a second decode could give it and that one failed (the model input is good).
   */
  view: RgbImage | undefined;
  /** The input's format, by its signature. */
  format: ImageFormat | undefined;
}

/**
 * The model input and a viewable copy of one image, decoded once where that gives the model the very pixels
 * decodeToTensor would: a JPEG that libjpeg-turbo decodes (decodesWithTurbo: the usual web photo at 224) and is
 * small enough to view whole, or a plain 8-bit sRGB PNG or WebP, upright, small enough to view whole and to need no
 * shrink-on-load. Anything else is decoded twice, the view with shrink-on-load, so it costs little.
 */
export async function decodeWithView(input: Buffer, options: DecodeOptions & { maxViewPixels: number }): Promise<ModelInputAndView> {
  const maxPixels = options.maxPixels ?? DEFAULT_MAX_PIXELS;
  if (options.formats) checkFormat(input, options.formats);
  const format = sniffImageFormat(input);
  const jpeg = format === 'jpeg' ? decodesWithTurbo(input, options.size, maxPixels) : undefined;
  if (jpeg && jpeg.width * jpeg.height <= options.maxViewPixels) {
    return { ...(await decodeJpegWithView(input, jpeg, 'image', options)), format };
  }
  const sharp = await loadSharp();
  // sharp's constructor throws (rather than rejects) on some inputs, e.g. none at all: decodeToTensor says why.
  const meta = await Promise.resolve()
    .then(() => sharp(input, { limitInputPixels: false }).metadata())
    .catch(() => undefined);
  if (!meta || !format || !decodesOnceExactly(meta, format, options)) {
    const pixels = await decodeToTensor(input, options);
    const view = meta ? await decodeView(input, meta.autoOrient, options, maxPixels).catch(() => undefined) : undefined;
    return { pixels, view, format };
  }
  try {
    const image = await openImage(input, { maxPixels, timeoutSeconds: options.timeoutSeconds });
    const { data, info } = await image.raw({ depth: 'uchar' }).toBuffer({ resolveWithObject: true });
    if (info.channels !== 3) throw new ImageRejected('unreadable', 'image', `decoded to ${info.channels} channels, expected 3`);
    const view = { data, width: info.width, height: info.height };
    const pixels = await sharp(data, { raw: { width: info.width, height: info.height, channels: 3 } })
      .resize(options.size, options.size, { fit: options.fit === 'fill' ? 'fill' : 'cover', position: 'centre', kernel: RESIZE_KERNEL })
      .raw()
      .toBuffer();
    return { pixels: new Uint8Array(pixels.buffer, pixels.byteOffset, pixels.length), view, format };
  } catch (error) {
    if (error instanceof ImageRejected) throw error;
    throw await rejectionOf(error, input, 'image', input.length, maxPixels);
  }
}

interface HeaderFacts {
  width?: number | undefined;
  height?: number | undefined;
  channels?: number | undefined;
  depth?: string | undefined;
  space?: string | undefined;
  hasAlpha?: boolean | undefined;
  orientation?: number | undefined;
  pages?: number | undefined;
}

/**
 * Whether decoding at full size and then resizing gives decodeToTensor's pixels. sharp shrinks a JPEG in the decoder
 * by 2, 4 or 8 when the smaller of the two reductions is at least 2 (the same for fill and cover on a square
 * target), and loads a WebP at a reduced scale whenever it reduces; orientation, alpha, other colour spaces and
 * depths each add a step whose place in sharp's pipeline the two-step route would not reproduce.
 */
function decodesOnceExactly(meta: HeaderFacts, format: ImageFormat, options: DecodeOptions & { maxViewPixels: number }): boolean {
  const { width, height } = meta;
  if (!width || !height || width * height > options.maxViewPixels) return false;
  if (
    meta.channels !== 3 ||
    meta.hasAlpha ||
    meta.depth !== 'uchar' ||
    meta.space !== 'srgb' ||
    (meta.orientation ?? 1) !== 1 ||
    (meta.pages ?? 1) !== 1
  )
    return false;
  const reduction = Math.min(width, height) / options.size;
  if (format === 'jpeg') return reduction < 2; // JPEGs that reach here are not decoded by libjpeg-turbo (see above)
  if (format === 'webp') return reduction <= 1;
  return format === 'png';
}

/** The upright sRGB picture (`upright`: its size with EXIF rotation applied) scaled to fit maxViewPixels. */
async function decodeView(
  input: Buffer,
  upright: { width: number; height: number },
  options: DecodeOptions & { maxViewPixels: number },
  maxPixels: number,
): Promise<RgbImage> {
  const scale = Math.min(1, Math.sqrt(options.maxViewPixels / (upright.width * upright.height)));
  const image = await openImage(input, { maxPixels, timeoutSeconds: options.timeoutSeconds });
  const { data, info } = await image
    .rotate()
    .flatten({ background: ALPHA_BACKGROUND })
    .toColourspace('srgb')
    .resize(Math.max(1, Math.floor(upright.width * scale)), Math.max(1, Math.floor(upright.height * scale)), {
      fit: 'fill',
      kernel: RESIZE_KERNEL,
      fastShrinkOnLoad: true,
    })
    .removeAlpha()
    .raw({ depth: 'uchar' })
    .toBuffer({ resolveWithObject: true });
  return { data, width: info.width, height: info.height };
}

/** encodeView as base64 text, for a JSON answer: a JPEG is encoded into a reused buffer and turned into text at once. */
export async function encodeViewBase64(view: RgbImage, format: ImageFormat | undefined): Promise<string> {
  if (format === 'jpeg' && JPEG_TURBO_VERSION) return encodeJpegRgbBase64(view.data, view.width, view.height, 80);
  return (await encodeView(view, format)).toString('base64');
}

/**
 * Encode a view for sending back: JPEG stays JPEG (quality 80, 4:2:0, plain Huffman tables: an echo, not an archive;
 * by libjpeg-turbo directly where it is installed), WebP stays WebP, anything else becomes PNG.
 */
export async function encodeView(view: RgbImage, format: ImageFormat | undefined): Promise<Buffer> {
  if (format === 'jpeg' && JPEG_TURBO_VERSION) return encodeJpegRgb(view.data, view.width, view.height, 80);
  const sharp = await loadSharp();
  const image = sharp(view.data, { raw: { width: view.width, height: view.height, channels: 3 } });
  switch (format) {
    case 'jpeg':
      return image.jpeg({ quality: 80, optimiseCoding: false }).toBuffer();
    case 'webp':
      return image.webp({ quality: 80, effort: 2 }).toBuffer();
    default:
      return image.png({ compressionLevel: 4 }).toBuffer();
  }
}

/** A white-on-transparent rendering of `text` in bold sans at fontSize: one byte of coverage per pixel. */
export async function renderTextMask(
  text: string,
  fontSize: number,
  box: { width: number; height: number; x: number; baseline: number },
): Promise<Uint8Array> {
  const sharp = await loadSharp();
  const svg = Buffer.from(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${box.width}" height="${box.height}">` +
      `<text x="${box.x}" y="${box.baseline}" font-family="DejaVu Sans, Arial, sans-serif" font-size="${fontSize}" font-weight="bold" fill="white">${escapeXml(text)}</text></svg>`,
  );
  const alpha = await sharp(svg).ensureAlpha().extractChannel(3).raw().toBuffer();
  return new Uint8Array(alpha.buffer, alpha.byteOffset, alpha.length);
}
