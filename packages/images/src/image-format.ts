/** The formats serve documents and prep-data reads; each is recognised by its first bytes before any decoding. */
export const IMAGE_FORMATS = ['jpeg', 'png', 'webp', 'gif', 'tiff'] as const;
export type ImageFormat = (typeof IMAGE_FORMATS)[number];

const ascii = (bytes: Uint8Array, at: number, text: string) => text.split('').every((c, i) => bytes[at + i] === c.charCodeAt(0));

/** The format named by the bytes' signature (magic number), or undefined: SVG, AVIF, HEIF, PDF, text, anything else. */
export function sniffImageFormat(bytes: Uint8Array): ImageFormat | undefined {
  if (bytes.length >= 3 && bytes[0] === 0xff && bytes[1] === 0xd8 && bytes[2] === 0xff) return 'jpeg';
  if (bytes.length >= 8 && ascii(bytes, 0, '\x89PNG\r\n\x1a\n')) return 'png';
  if (bytes.length >= 12 && ascii(bytes, 0, 'RIFF') && ascii(bytes, 8, 'WEBP')) return 'webp';
  if (bytes.length >= 6 && (ascii(bytes, 0, 'GIF87a') || ascii(bytes, 0, 'GIF89a'))) return 'gif';
  if (bytes.length >= 4 && (ascii(bytes, 0, 'II*\0') || ascii(bytes, 0, 'MM\0*'))) return 'tiff';
  return undefined;
}

/** Parse a comma-separated list of formats (jpg is jpeg, tif is tiff); throws naming the unknown one. */
export function parseImageFormats(text: string): ImageFormat[] {
  const aliases: Record<string, ImageFormat> = { jpg: 'jpeg', tif: 'tiff' };
  const formats = text
    .split(',')
    .map((f) => f.trim().toLowerCase())
    .filter(Boolean)
    .map((f) => aliases[f] ?? f);
  const unknown = formats.find((f) => !(IMAGE_FORMATS as readonly string[]).includes(f));
  if (unknown !== undefined || formats.length === 0) {
    throw new RangeError(`expected a comma-separated list of ${IMAGE_FORMATS.join(', ')}, got '${text}'`);
  }
  return [...new Set(formats as ImageFormat[])];
}
