import { mkdir } from 'node:fs/promises';
import { createRng, DATASET_FORMAT, DATASET_ROW_COLUMNS, sha256, SPLIT_NAMES, SplitFilesWriter, writeManifest, type SplitName } from '@imgpipe/kit';

/**
 * A dataset directory in prep-data's layout (manifest.json, <split>.u8, <split>.csv), written through kit's dataset
 * writer, with random pixels (or `pixels(split, count)`'s), for engine tests and benchmarks that need no image
 * decoding. Image n of a split has label n % classes (or `labels(split, n)`).
 */
export async function writeSyntheticDataset(options: {
  dir: string;
  size: number;
  counts: { train: number; val: number; test: number };
  seed?: number;
  classes?: string[];
  /** The split's pixels, count*size*size*3 bytes; default: uniform random bytes. */
  pixels?: (split: SplitName, count: number) => Uint8Array;
  /** Image n's label; default n % classes.length. */
  labels?: (split: SplitName, n: number) => number;
}): Promise<string> {
  const { dir, size, counts, seed = 7, classes = ['cat', 'dog'] } = options;
  const rand = createRng(seed);
  const randomPixels = (_split: SplitName, count: number) => {
    const pixels = new Uint8Array(count * size * size * 3);
    for (let i = 0; i < pixels.length; i++) pixels[i] = Math.floor(rand() * 256);
    return pixels;
  };
  await mkdir(dir, { recursive: true });
  const writer = await SplitFilesWriter.open(dir, { classes, columns: DATASET_ROW_COLUMNS });
  try {
    for (const split of SPLIT_NAMES) {
      const count = counts[split];
      const pixels = (options.pixels ?? randomPixels)(split, count);
      const image = size * size * 3;
      for (let i = 0; i < count; i++) {
        const label = options.labels ? options.labels(split, i) : i % classes.length;
        await writer.append(split, pixels.subarray(i * image, (i + 1) * image), {
          source: `img-${split}-${i}.png`,
          label,
          category: classes[label]!,
        });
      }
    }
  } catch (error) {
    await writer.close();
    throw error;
  }
  await writeManifest(dir, {
    format: DATASET_FORMAT,
    classes,
    image_size: size,
    channels: 3,
    layout: 'NHWC',
    dtype: 'uint8',
    fit: 'fill',
    split: { method: 'random', seed, fractions: { train: 0.7, val: 0.15, test: 0.15 } },
    splits: await writer.finish(),
    source_csv_sha256: sha256('synthetic'),
    options_sha256: sha256(JSON.stringify({ size, counts, seed })),
    rejected: 0,
    created: new Date().toISOString(),
    versions: {},
  });
  return dir;
}
