/** What a JPEG's markers say before any pixel is decoded. */
export interface JpegHeader {
  width: number;
  height: number;
  /** 1 (grey), 3 (YCbCr, or RGB with an Adobe transform of 0), 4 (CMYK/YCCK). */
  components: number;
  /** Bits per sample: 8, or 12 for extended JPEGs. */
  precision: number;
  /** The frame's coding: baseline or extended Huffman, progressive Huffman, or something else (arithmetic, lossless). */
  coding: 'huffman' | 'progressive' | 'other';
  /** EXIF orientation, 1-8 (1 when there is none). */
  orientation: number;
  /** An embedded ICC profile (APP2 ICC_PROFILE). */
  icc: boolean;
  /** The Adobe APP14 colour transform (0 none, 1 YCbCr, 2 YCCK), when the marker is there. */
  adobeTransform: number | undefined;
}

const SOF_HUFFMAN = new Set([0xc0, 0xc1]);
const SOF_OTHER = new Set([0xc3, 0xc5, 0xc6, 0xc7, 0xc9, 0xca, 0xcb, 0xcd, 0xce, 0xcf]);

/**
 * Read a JPEG's markers up to its first scan; undefined when the bytes are not a well-formed JPEG header (the
 * caller then lets the general decoder say what is wrong).
 */
export function readJpegHeader(bytes: Uint8Array): JpegHeader | undefined {
  if (bytes.length < 4 || bytes[0] !== 0xff || bytes[1] !== 0xd8) return undefined;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let orientation = 1;
  let icc = false;
  let adobeTransform: number | undefined;
  let frame: Pick<JpegHeader, 'width' | 'height' | 'components' | 'precision' | 'coding'> | undefined;
  let at = 2;
  while (at + 4 <= bytes.length) {
    if (bytes[at] !== 0xff) return undefined;
    const marker = bytes[at + 1]!;
    if (marker === 0xff) {
      at += 1; // fill byte
      continue;
    }
    if (marker === 0x01 || (marker >= 0xd0 && marker <= 0xd7)) {
      at += 2;
      continue;
    }
    if (marker === 0xd9) return undefined; // EOI before any scan
    const length = view.getUint16(at + 2);
    const start = at + 4;
    const end = at + 2 + length;
    if (length < 2 || end > bytes.length) return undefined;
    if (marker === 0xda) return frame ? { ...frame, orientation, icc, adobeTransform } : undefined;
    if (SOF_HUFFMAN.has(marker) || marker === 0xc2 || SOF_OTHER.has(marker)) {
      if (length < 8) return undefined;
      frame = {
        precision: bytes[start]!,
        height: view.getUint16(start + 1),
        width: view.getUint16(start + 3),
        components: bytes[start + 5]!,
        coding: SOF_HUFFMAN.has(marker) ? 'huffman' : marker === 0xc2 ? 'progressive' : 'other',
      };
    } else if (marker === 0xe1 && startsWith(bytes, start, 'Exif\0\0')) {
      orientation = exifOrientation(view, start + 6, end) ?? orientation;
    } else if (marker === 0xe2 && startsWith(bytes, start, 'ICC_PROFILE\0')) {
      icc = true;
    } else if (marker === 0xee && startsWith(bytes, start, 'Adobe') && end - start >= 12) {
      adobeTransform = bytes[start + 11];
    }
    at = end;
  }
  return undefined;
}

function startsWith(bytes: Uint8Array, at: number, text: string): boolean {
  for (let i = 0; i < text.length; i++) if (bytes[at + i] !== text.charCodeAt(i)) return false;
  return true;
}

/** Tag 0x0112 of IFD0 in the TIFF structure at [tiff, end); undefined when absent or malformed. */
function exifOrientation(view: DataView, tiff: number, end: number): number | undefined {
  if (tiff + 8 > end) return undefined;
  const order = view.getUint16(tiff);
  if (order !== 0x4949 && order !== 0x4d4d) return undefined;
  const little = order === 0x4949;
  const ifd = tiff + view.getUint32(tiff + 4, little);
  if (ifd + 2 > end) return undefined;
  const entries = view.getUint16(ifd, little);
  for (let i = 0; i < entries; i++) {
    const entry = ifd + 2 + i * 12;
    if (entry + 12 > end) return undefined;
    if (view.getUint16(entry, little) !== 0x0112) continue;
    const value = view.getUint16(entry + 2, little) === 3 ? view.getUint16(entry + 8, little) : undefined;
    return value !== undefined && value >= 1 && value <= 8 ? value : undefined;
  }
  return undefined;
}
