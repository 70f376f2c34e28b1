import sharp from 'sharp';

export type EchoMode = 'annotated' | 'raw';

const escapeXml = (text: string) =>
  text.replace(/[<>&"']/g, (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', '"': '&quot;', "'": '&apos;' })[c]!);

/**
 * The image sent back with the predicted label drawn on it: a dark banner across the top with
 * "label 98.1%" in white, composited by sharp from an SVG, in the input's format (JPEG stays JPEG,
 * PNG and WebP stay so, anything else becomes PNG). EXIF orientation is applied first, so the banner
 * sits at the top of the image as people see it. Work is bounded: the pixel limit, a timeout, and an image over
 * maxEchoPixels is scaled down first, so the echo is never larger than that.
 */
export async function annotateImage(
  bytes: Buffer,
  label: string,
  probability: number,
  limits: { maxPixels: number; maxEchoPixels: number; timeoutSeconds: number },
): Promise<Buffer> {
  const image = sharp(bytes, { limitInputPixels: limits.maxPixels, failOn: 'truncated' }).timeout({ seconds: Math.max(1, Math.ceil(limits.timeoutSeconds)) });
  const { autoOrient, format } = await image.metadata();
  // The echo is bounded: an image over maxEchoPixels comes back scaled down to fit.
  const scale = Math.min(1, Math.sqrt(limits.maxEchoPixels / (autoOrient.width * autoOrient.height)));
  const width = Math.max(1, Math.floor(autoOrient.width * scale));
  const height = Math.max(1, Math.floor(autoOrient.height * scale));
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
  const oriented = image.autoOrient();
  const out = (scale < 1 ? sharp(await oriented.resize(width, height, { fit: 'fill' }).toBuffer()) : oriented).composite([{ input: svg, top: 0, left: 0 }]);
  switch (format) {
    case 'jpeg':
      return out.jpeg({ quality: 90 }).toBuffer();
    case 'webp':
      return out.webp().toBuffer();
    default:
      return out.png().toBuffer();
  }
}
