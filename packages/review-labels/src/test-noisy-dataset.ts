// Test-only (excluded from the build): a dataset in prep-data's layout whose classes a tiny backbone tells apart
// (one dominant colour per class, with noise), with a known set of labels flipped and a few outliers planted.
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createRng, csvString, deriveSeed, SPLIT_NAMES, type Rng, type SplitName } from '@imgpipe/kit';
import { buildTinyConvBackbone, writeSyntheticDataset } from '@imgpipe/test-utils';

export const NOISY_SIZE = 16;
const PALETTE = [
  [200, 60, 60],
  [60, 190, 70],
  [60, 80, 210],
  [200, 190, 60],
] as const;

export interface NoisyDatasetOptions {
  dir: string;
  counts: { train: number; val: number; test: number };
  classes?: string[];
  /** Fraction of labels flipped to another class at random. */
  noise: number;
  /** Images that belong to no class (noise, a "text card"), given a label. */
  outliers?: number;
  /** Test images that are copies of training images (same label). */
  duplicates?: number;
  seed?: number;
}

/** Rows, in the pooled order review-labels uses (train, val, test), by what was done to them. */
export interface NoisyDataset {
  dir: string;
  classes: string[];
  flipped: Set<number>;
  outliers: Set<number>;
  /** Pooled test rows that copy a training image. */
  duplicates: Set<number>;
  /** The label each pooled row should have (outliers: the one they were given). */
  trueLabels: number[];
}

/** `contrast` below 1 pulls the class colours towards grey, so that classes overlap (a harder task). */
function classImage(rng: Rng, label: number, size: number, contrast = 1): Uint8Array {
  const pixels = new Uint8Array(size * size * 3);
  const [r, g, b] = PALETTE[label % PALETTE.length]!.map((v) => 128 + (v - 128) * contrast);
  const shade = 0.75 + rng() * 0.5;
  // A lighter or darker patch somewhere, so that pictures of a class differ in layout as well as in shade.
  const patch = 4 + Math.floor(rng() * 6);
  const px = Math.floor(rng() * (size - patch));
  const py = Math.floor(rng() * (size - patch));
  const patchShade = rng() < 0.5 ? 0.5 : 1.4;
  for (let p = 0; p < size * size; p++) {
    const x = p % size;
    const y = Math.floor(p / size);
    const inPatch = x >= px && x < px + patch && y >= py && y < py + patch;
    [r, g, b].forEach((base, c) => {
      pixels[p * 3 + c] = Math.max(0, Math.min(255, Math.round(base! * shade * (inPatch ? patchShade : 1) + (rng() - 0.5) * 90)));
    });
  }
  return pixels;
}

/** Uniform noise, or black bars of "text" on white. */
function outlierImage(rng: Rng, n: number, size: number): Uint8Array {
  const pixels = new Uint8Array(size * size * 3);
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      for (let c = 0; c < 3; c++) {
        pixels[(y * size + x) * 3 + c] = n % 2 === 0 ? Math.floor(rng() * 256) : y % 4 === 1 && x > 1 && x < size - 2 && rng() < 0.8 ? 10 : 250;
      }
    }
  }
  return pixels;
}

export async function writeNoisyDataset(options: NoisyDatasetOptions): Promise<NoisyDataset> {
  const { dir, counts, noise, outliers = 0, duplicates = 0, seed = 11 } = options;
  const classes = options.classes ?? ['red', 'green', 'blue'];
  const k = classes.length;
  const total = counts.train + counts.val + counts.test;
  const pick = createRng(deriveSeed(seed, 'pick'));
  const order = Array.from({ length: total }, (_, i) => i)
    .map((i) => ({ i, r: pick() }))
    .sort((a, b) => a.r - b.r)
    .map((e) => e.i);
  const outlierRows = new Set(order.slice(0, outliers));
  const flipped = new Set(order.slice(outliers, outliers + Math.round(noise * total)));
  const rng = createRng(deriveSeed(seed, 'pixels'));
  const trueLabels: number[] = [];
  const givenLabels: number[] = [];
  const duplicateRows = new Set<number>();
  const splits = {} as Record<SplitName, { pixels: Uint8Array; labels: number[] }>;
  let trainPixels = new Uint8Array(0);
  let source = 0;
  let row = 0;
  for (const split of SPLIT_NAMES) {
    const count = counts[split];
    const pixels = new Uint8Array(count * NOISY_SIZE * NOISY_SIZE * 3);
    const labels: number[] = [];
    for (let n = 0; n < count; n++, row++) {
      let truth = Math.floor(pick() * k);
      let image = outlierRows.has(row) ? outlierImage(rng, row, NOISY_SIZE) : classImage(rng, truth, NOISY_SIZE);
      let given = flipped.has(row) ? (truth + 1 + Math.floor(pick() * (k - 1))) % k : truth;
      if (split === 'test' && duplicateRows.size < duplicates && !flipped.has(row) && !outlierRows.has(row)) {
        while (flipped.has(source) || outlierRows.has(source)) source++;
        const copyOf = source++;
        image = trainPixels.slice(copyOf * image.length, (copyOf + 1) * image.length);
        truth = trueLabels[copyOf]!;
        given = givenLabels[copyOf]!;
        duplicateRows.add(row);
      }
      pixels.set(image, n * image.length);
      givenLabels.push(given);
      trueLabels.push(truth);
      labels.push(given);
    }
    if (split === 'train') trainPixels = pixels;
    splits[split] = { pixels, labels };
  }
  await writeSyntheticDataset({
    dir,
    size: NOISY_SIZE,
    counts,
    seed,
    classes,
    pixels: (split) => splits[split].pixels,
    labels: (split, n) => splits[split].labels[n]!,
  });
  return { dir, classes, flipped, outliers: outlierRows, duplicates: duplicateRows, trueLabels };
}

/** The tiny ONNX conv backbone (16 features) as train flags. */
export async function noisyBackbone(dir: string): Promise<string[]> {
  const tiny = await buildTinyConvBackbone({ dir, inputSize: NOISY_SIZE, format: 'onnx', seed: 2, channels: [8, 16] });
  return ['--backbone', tiny.path, '--feature-layer', tiny.featureLayer, '--preprocess', 'torch'];
}

export interface NoisyImageSet {
  csvPath: string;
  /** CSV rows, in order, with the label each was given and the class its picture shows. */
  rows: { s3_image: string; local_image: string; label: number; truth: number }[];
}

/**
 * The same pictures as PNG files (lossless, NOISY_SIZE square: prep-data at that size keeps their pixels) and an
 * images CSV as download-s3 prints it, with a fraction of the labels flipped. `name(i)` makes each S3 key.
 */
export async function writeNoisyImageSet(options: {
  dir: string;
  count: number;
  classes: string[];
  noise: number;
  seed?: number;
  contrast?: number;
  name?: (i: number) => string;
}): Promise<NoisyImageSet> {
  const { dir, count, classes, noise, seed = 13 } = options;
  const { mkdir } = await import('node:fs/promises');
  const { encodeView } = await import('@imgpipe/images');
  await mkdir(dir, { recursive: true });
  const rng = createRng(deriveSeed(seed, 'pixels'));
  const pick = createRng(deriveSeed(seed, 'pick'));
  const flips = new Set(
    Array.from({ length: count }, (_, i) => ({ i, r: pick() }))
      .sort((a, b) => a.r - b.r)
      .slice(0, Math.round(noise * count))
      .map((e) => e.i),
  );
  const rows: NoisyImageSet['rows'] = [];
  for (let i = 0; i < count; i++) {
    const truth = i % classes.length;
    const pixels = classImage(rng, truth, NOISY_SIZE, options.contrast);
    const file = join(dir, `image-${i}.png`);
    await writeFile(file, await encodeView({ data: Buffer.from(pixels), width: NOISY_SIZE, height: NOISY_SIZE }, 'png'));
    const label = flips.has(i) ? (truth + 1) % classes.length : truth;
    rows.push({ s3_image: options.name?.(i) ?? `images/image-${i}.png`, local_image: file, label, truth });
  }
  const csvPath = join(dir, 'images.csv');
  await writeFile(
    csvPath,
    await csvString(
      ['bucket', 's3_image', 'category', 'label', 'local_image'],
      rows.map((r) => ({ bucket: 'review', s3_image: r.s3_image, category: classes[r.label], label: r.label, local_image: r.local_image })),
    ),
  );
  return { csvPath, rows };
}
