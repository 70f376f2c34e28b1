import sharp from 'sharp';

/**
 * The eval package's only sharp user: rasterise the plots' SVG (librsvg inside libvips, no browser) to an opaque
 * PNG, and encode raw test pixels as PNG for embedding in the contact sheet. Fonts come from fontconfig
 * (DejaVu Sans when installed); without fonts the text is missing but the PNG is still written.
 */
export async function svgToPng(svg: string): Promise<Buffer> {
  return sharp(Buffer.from(svg), { density: 72 }).flatten({ background: '#ffffff' }).png({ compressionLevel: 9 }).toBuffer();
}

/** Raw uint8 RGB pixels (HWC) to a PNG. */
export async function rgbToPng(pixels: Uint8Array, width: number, height: number): Promise<Buffer> {
  if (pixels.length !== width * height * 3) throw new RangeError(`expected ${width}x${height}x3 bytes, got ${pixels.length}`);
  return sharp(pixels, { raw: { width, height, channels: 3 } })
    .png()
    .toBuffer();
}

/** Decode an image fully (not just its header) and give its size and format: tests use it to check plots. */
export async function decodedSize(image: Buffer): Promise<{ width: number; height: number; format: string | undefined }> {
  const { format } = await sharp(image).metadata();
  const { info } = await sharp(image).raw().toBuffer({ resolveWithObject: true });
  return { width: info.width, height: info.height, format };
}
