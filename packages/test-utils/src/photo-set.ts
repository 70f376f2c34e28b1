import { mkdir, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createRng, exists } from '@imgpipe/kit';
import sharp from 'sharp';

/**
 * Photo-like JPEGs for decode and serve benchmarks, made from real photographs that Debian ships (scikit-image's
 * sample data, python3-skimage: a cat, a rocket, coffee, an astronaut, motorcycles, ...; OpenCV's samples when
 * present). Generated shapes compress and decode unlike photos, so decode figures are measured on these.
 *
 * Each file is a random crop (40-100% of each side) of a source photo, scaled so its long side is 300-500 px (as
 * the Dogs vs Cats photos: median 447 x 374), encoded at quality 70-90 with 4:2:0 chroma; about 1 in 20 is
 * progressive and 1 in 20 carries an EXIF orientation (6: rotate 90). Deterministic for a seed.
 */
export const PHOTO_SOURCE_DIRS = ['/usr/lib/python3/dist-packages/skimage/data', '/usr/share/opencv4/samples/data', '/usr/share/opencv/samples/data'];

const COLOUR_PHOTOS =
  /^(chelsea|coffee|astronaut|rocket|motorcycle_left|motorcycle_right|hubble_deep_field|retina|ihc|color|lena|baboon|fruits|messi5|home|building|graf1|starry_night|apple|orange|aero1|aero3|board|pic\d|ml|butterfly)\.(png|jpe?g)$/i;

export async function photoSources(dirs: readonly string[] = PHOTO_SOURCE_DIRS): Promise<string[]> {
  const found: string[] = [];
  for (const dir of dirs) {
    if (!(await exists(dir))) continue;
    for (const name of (await readdir(dir)).sort()) if (COLOUR_PHOTOS.test(name)) found.push(join(dir, name));
  }
  return found;
}

export interface PhotoSetOptions {
  dir: string;
  count: number;
  seed?: number;
  sources?: string[];
}

/** Write `count` photo-like JPEGs into dir (photo-00000.jpg, ...), skipping files already there; returns the paths. */
export async function buildPhotoSet(options: PhotoSetOptions): Promise<string[]> {
  const sources = options.sources ?? (await photoSources());
  if (sources.length === 0) {
    throw new Error(`no source photographs found in ${PHOTO_SOURCE_DIRS.join(', ')}: apt-get install python3-skimage`);
  }
  await mkdir(options.dir, { recursive: true });
  const decoded = await Promise.all(
    sources.map((path) => sharp(path).removeAlpha().toColourspace('srgb').raw().toBuffer({ resolveWithObject: true })),
  );
  const random = createRng(options.seed ?? 2025);
  const paths: string[] = [];
  for (let i = 0; i < options.count; i++) {
    const source = decoded[Math.floor(random() * decoded.length)]!;
    const { width, height } = source.info;
    const cropWidth = Math.max(32, Math.round(width * (0.4 + 0.6 * random())));
    const cropHeight = Math.max(32, Math.round(height * (0.4 + 0.6 * random())));
    const left = Math.floor(random() * (width - cropWidth + 1));
    const top = Math.floor(random() * (height - cropHeight + 1));
    const longSide = 300 + Math.floor(random() * 201);
    const quality = 70 + Math.floor(random() * 21);
    const progressive = random() < 0.05;
    const rotated = random() < 0.05;
    const path = join(options.dir, `photo-${String(i).padStart(5, '0')}.jpg`);
    paths.push(path);
    if (await exists(path)) continue;
    let image = sharp(source.data, { raw: source.info })
      .extract({ left, top, width: cropWidth, height: cropHeight })
      .resize(longSide, longSide, { fit: 'inside', kernel: 'lanczos3' })
      .jpeg({ quality, chromaSubsampling: '4:2:0', progressive, mozjpeg: false });
    if (rotated) image = image.withMetadata({ orientation: 6 });
    await writeFile(path, await image.toBuffer());
  }
  return paths;
}
