import sharp from 'sharp';

export type EchoMode = 'annotated' | 'raw';

const escapeXml = (text: string) =>
  text.replace(/[<>&"']/g, (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', '"': '&quot;', "'": '&apos;' })[c]!);

/**
 * The image sent back with the predicted label drawn on it: a dark banner across the top with
 * "label 98.1%" in white, composited by sharp from an SVG, in the input's format (JPEG stays JPEG,
 * PNG and WebP stay so, anything else becomes PNG). EXIF orientation is applied first, so the banner
 * sits at the top of the image as people see it.
 */
export async function annotateImage(bytes: Buffer, label: string, probability: number, maxPixels: number): Promise<Buffer> {
  const image = sharp(bytes, { limitInputPixels: maxPixels, failOn: 'truncated' });
  const { autoOrient, format } = await image.metadata();
  const { width, height } = autoOrient;
  const bannerHeight = Math.max(12, Math.min(height, Math.round(Math.max(height, width / 4) * 0.12)));
  const caption = `${label} ${(probability * 100).toFixed(1)}%`;
  // Bold sans glyphs are about 0.65 em wide: shrink the font so the caption fits the width.
  const fontSize = Math.max(4, Math.round(Math.min(bannerHeight * 0.72, (width * 0.94) / (caption.length * 0.65))));
  const text = escapeXml(caption);
  const svg = Buffer.from(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${bannerHeight}">` +
      `<rect width="100%" height="100%" fill="black" fill-opacity="0.6"/>` +
      `<text x="${Math.round(fontSize * 0.3)}" y="${Math.round(bannerHeight * 0.78)}" font-family="DejaVu Sans, Arial, sans-serif" ` +
      `font-size="${fontSize}" font-weight="bold" fill="white">${text}</text></svg>`,
  );
  const out = image.autoOrient().composite([{ input: svg, top: 0, left: 0 }]);
  switch (format) {
    case 'jpeg':
      return out.jpeg({ quality: 90 }).toBuffer();
    case 'webp':
      return out.webp().toBuffer();
    default:
      return out.png().toBuffer();
  }
}
