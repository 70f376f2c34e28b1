import sharp from 'sharp';

/** A PNG of w x h pixels: a colour gradient that depends on `seed`, so images classify differently. */
export async function testImage(seed: number, width = 40, height = 30, format: 'png' | 'jpeg' = 'png'): Promise<Buffer> {
  const pixels = Buffer.alloc(width * height * 3);
  for (let y = 0; y < height; y += 1) {
    for (let x = 0; x < width; x += 1) {
      const i = (y * width + x) * 3;
      pixels[i] = ((x * 255) / width + seed * 37) % 256;
      pixels[i + 1] = ((y * 255) / height + seed * 91) % 256;
      pixels[i + 2] = (((x + y) * 128) / (width + height) + seed * 53) % 256;
    }
  }
  const image = sharp(pixels, { raw: { width, height, channels: 3 } });
  return format === 'png' ? image.png().toBuffer() : image.jpeg({ quality: 95 }).toBuffer();
}
