import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createRng, sha256, writeJsonAtomic } from '@imgpipe/kit';

/**
 * A dataset directory in prep-data's layout (manifest.json, <split>.u8, <split>.csv) with random pixels, for
 * engine tests and benchmarks that need no image decoding.
 */
export async function writeSyntheticDataset(options: {
  dir: string;
  size: number;
  counts: { train: number; val: number; test: number };
  seed?: number;
  classes?: string[];
}): Promise<string> {
  const { dir, size, counts, seed = 7, classes = ['cat', 'dog'] } = options;
  const rand = createRng(seed);
  await mkdir(dir, { recursive: true });
  const splits: Record<string, unknown> = {};
  for (const split of ['train', 'val', 'test'] as const) {
    const count = counts[split];
    const pixels = new Uint8Array(count * size * size * 3);
    for (let i = 0; i < pixels.length; i++) pixels[i] = Math.floor(rand() * 256);
    const labels = Array.from({ length: count }, (_, i) => i % classes.length);
    const csv = `index,source,label,category\n${labels.map((l, i) => `${i},img-${split}-${i}.png,${l},${classes[l]}`).join('\n')}${count ? '\n' : ''}`;
    await writeFile(join(dir, `${split}.u8`), pixels);
    await writeFile(join(dir, `${split}.csv`), csv);
    splits[split] = {
      count,
      per_class: classes.map((_, c) => labels.filter((l) => l === c).length),
      pixels: { file: `${split}.u8`, bytes: pixels.length, sha256: sha256(pixels) },
      rows: { file: `${split}.csv`, sha256: sha256(csv) },
    };
  }
  await writeJsonAtomic(join(dir, 'manifest.json'), {
    format: 'imgpipe-dataset/1',
    classes,
    image_size: size,
    channels: 3,
    layout: 'NHWC',
    dtype: 'uint8',
    fit: 'fill',
    split: { method: 'random', seed, fractions: { train: 0.7, val: 0.15, test: 0.15 } },
    splits,
    source_csv_sha256: sha256('synthetic'),
    options_sha256: sha256(JSON.stringify({ size, counts, seed })),
    rejected: 0,
    created: new Date().toISOString(),
    versions: {},
  });
  return dir;
}
