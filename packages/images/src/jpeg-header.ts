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
  /**
   * The embedded ICC profile (APP2 ICC_PROFILE): none, an sRGB one (decoding as sRGB is then exact: what cameras and
   * phones embed, and what sharp writes with EXIF), or another (Display P3, Adobe RGB...: needs colour management).
   */
  icc: false | 'srgb' | 'other';
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
  let icc: JpegHeader['icc'] = false;
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
      // One segment (sequence 1 of 1) holds the whole profile; a profile split over several is not looked into.
      icc =
        icc === false && end - start > 14 && bytes[start + 12] === 1 && bytes[start + 13] === 1 && isSrgbProfile(bytes.subarray(start + 14, end))
          ? 'srgb'
          : 'other';
    } else if (marker === 0xee && startsWith(bytes, start, 'Adobe') && end - start >= 12) {
      adobeTransform = bytes[start + 11];
    }
    at = end;
  }
  return undefined;
}

/** Profile descriptions of the sRGB profiles in common use (HP/Microsoft's, the ICC's, lcms' and libvips', libjpeg's). */
const SRGB_DESCRIPTIONS = /^(sRGB|sRGB IEC61966-2[.-]1|sRGB IEC61966-2-1 black scaled|sRGB built-in|sRGB2014)$/;

/** An RGB display profile to XYZ whose description names it sRGB. */
function isSrgbProfile(profile: Uint8Array): boolean {
  if (profile.length < 132 || !startsWith(profile, 16, 'RGB XYZ ') || !startsWith(profile, 36, 'acsp')) return false;
  const view = new DataView(profile.buffer, profile.byteOffset, profile.byteLength);
  const tags = view.getUint32(128);
  for (let i = 0; i < tags && 144 + i * 12 <= profile.length; i++) {
    const entry = 132 + i * 12;
    if (!startsWith(profile, entry, 'desc')) continue;
    const offset = view.getUint32(entry + 4);
    const size = view.getUint32(entry + 8);
    if (offset + size > profile.length || size < 12) return false;
    return SRGB_DESCRIPTIONS.test(profileText(profile.subarray(offset, offset + size)) ?? '');
  }
  return false;
}

/** The text of a textDescriptionType (ICC v2: ASCII) or multiLocalizedUnicodeType (v4: its first record, UTF-16BE) tag. */
function profileText(tag: Uint8Array): string | undefined {
  const view = new DataView(tag.buffer, tag.byteOffset, tag.byteLength);
  if (startsWith(tag, 0, 'desc')) {
    const length = view.getUint32(8);
    if (12 + length > tag.length) return undefined;
    return Buffer.from(tag.subarray(12, 12 + length))
      .toString('latin1')
      .replace(/\0+$/, '');
  }
  if (startsWith(tag, 0, 'mluc') && tag.length >= 28 && view.getUint32(8) >= 1) {
    const length = view.getUint32(20);
    const offset = view.getUint32(24);
    if (offset + length > tag.length) return undefined;
    return Buffer.from(tag.subarray(offset, offset + length))
      .swap16()
      .toString('utf16le')
      .replace(/\0+$/, '');
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
