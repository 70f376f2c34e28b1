import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { createRng, csvString } from '@imgpipe/kit';
import { joinKey } from '@imgpipe/s3';
import pLimit from 'p-limit';
import { writeBadImages, type BadImage } from './bad-images.js';
import { drawImage } from './shapes.js';

/**
 * A labelled image set drawn with sharp for tests and the demo: class 0 ("cat") shows warm-coloured round bodies
 * with triangle ears, class 1 ("dog") cool-coloured long rectangles with legs, on low-saturation backgrounds with
 * clutter and noise. Colour and shape both separate the classes and survive resizing to 32..224 px, so a small
 * conv net learns them well. Seeded: the same options give byte-identical files (same sharp/libvips build).
 */
export interface ImageSetOptions {
  dir: string;
  count: number;
  seed: number;
  /** Class names in label order; at most 2 styles exist, more classes reuse them with shifted hues. */
  classes?: readonly string[];
  /** Also write the bad files (truncated JPEG, text named .jpg, empty file, decompression-bomb PNG), listed in the CSV. */
  bad?: boolean;
  /** [width, height] choices; each image picks one. */
  sizes?: readonly (readonly [number, number])[];
  /** Written into the CSV's bucket column (default imgpipe-demo). */
  bucket?: string;
  /** Key prefix: s3_image = prefix/<relative path>, matching uploadDirectory(client, bucket, prefix, dir). */
  prefix?: string;
  /** Add a local_image column with absolute paths (default true), as download-s3 would. */
  localImage?: boolean;
  /** CSV file name under dir (default images.csv). */
  csvName?: string;
  quality?: number;
}

export interface ImageSetRow {
  bucket: string;
  s3_image: string;
  category: string;
  label: number;
  local_image: string;
  /** Path relative to dir. */
  file: string;
  /** For bad files: the rejection reason images' decodeToTensor (packages/images/src/image.ts) should give. */
  expectedReason?: BadImage['reason'];
}

export interface ImageSet {
  dir: string;
  csvPath: string;
  columns: string[];
  rows: ImageSetRow[];
  /** The good images only. */
  images: ImageSetRow[];
  bad: ImageSetRow[];
}

export const DEFAULT_IMAGE_SIZES: readonly (readonly [number, number])[] = [
  [500, 375],
  [375, 500],
  [400, 300],
  [320, 240],
  [300, 300],
  [640, 480],
];

/** Small sizes for fast tests. */
export const TINY_IMAGE_SIZES: readonly (readonly [number, number])[] = [
  [64, 48],
  [48, 64],
  [56, 56],
  [80, 60],
];

export async function generateImageSet(options: ImageSetOptions): Promise<ImageSet> {
  const { dir, count, seed } = options;
  const classes = options.classes ?? ['cat', 'dog'];
  const sizes = options.sizes ?? DEFAULT_IMAGE_SIZES;
  const bucket = options.bucket ?? 'imgpipe-demo';
  const prefix = options.prefix ?? 'images';
  const quality = options.quality ?? 88;
  if (!Number.isInteger(count) || count < 0) throw new RangeError(`count must be a non-negative integer, got ${count}`);
  if (classes.length < 1 || sizes.length < 1) throw new RangeError('need at least one class and one size');

  const rows: ImageSetRow[] = [];
  const perClass = classes.map(() => 0);
  for (let i = 0; i < count; i++) {
    const label = i % classes.length;
    const category = classes[label]!;
    const file = `${category}/${category}.${perClass[label]!++}.jpg`;
    rows.push({ bucket, s3_image: joinKey(prefix, file), category, label, local_image: join(dir, file), file });
  }
  // One generator per image (derived from the seed and its index) so concurrency cannot change the bytes.
  await pLimit(2).map(rows, async (row, index) => {
    const rng = createRng((seed * 1_000_003 + index * 7919 + 1) >>> 0);
    const size = sizes[Math.floor(rng() * sizes.length)]!;
    const bytes = await drawImage(rng, row.label, size[0], size[1], quality);
    await mkdir(dirname(row.local_image), { recursive: true });
    await writeFile(row.local_image, bytes);
  });

  const good = [...rows];
  if (options.bad) {
    const bad = await writeBadImages(dir, 'bad', createRng(seed ^ 0x5eed));
    bad.forEach((item, index) => {
      const label = index % classes.length;
      rows.push({
        bucket,
        s3_image: joinKey(prefix, item.file),
        category: classes[label]!,
        label,
        local_image: join(dir, item.file),
        file: item.file,
        expectedReason: item.reason,
      });
    });
  }

  const localImage = options.localImage ?? true;
  const columns = ['bucket', 's3_image', 'category', 'label', ...(localImage ? ['local_image'] : [])];
  const csvPath = join(dir, options.csvName ?? 'images.csv');
  await mkdir(dir, { recursive: true });
  await writeFile(csvPath, await csvString(columns, rows as unknown as Record<string, unknown>[]));
  return { dir, csvPath, columns, rows, images: good, bad: rows.slice(good.length) };
}
