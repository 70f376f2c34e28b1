import { createProgress, type Dataset, type Logger, type ProgressEvent, type SplitName } from '@imgpipe/kit';
import { PixelHasher, type LoadedModel } from '@imgpipe/engines';

/**
 * Probabilities of every image of a split (count x classes, row-major), predicted in batches with progress. The
 * pixel file is hashed as it is read and checked against the manifest at the end (an InputError when it changed).
 */
export async function predictSplit(options: {
  model: LoadedModel;
  dataset: Dataset;
  split: SplitName;
  batchSize: number;
  log: Logger;
  onProgress?: ((event: ProgressEvent) => void) | undefined;
}): Promise<Float32Array> {
  const { model, dataset, split, batchSize, log } = options;
  const count = dataset.manifest.splits[split].count;
  const classes = model.labels.length;
  const out = new Float32Array(count * classes);
  const progress = createProgress({ label: `eval ${split}`, total: count, unit: 'images', quiet: log.quiet, onEvent: options.onProgress });
  const hasher = new PixelHasher(dataset, split);
  const imageBytes = dataset.manifest.image_size * dataset.manifest.image_size * dataset.manifest.channels;
  for (let start = 0; start < count; start += batchSize) {
    const n = Math.min(batchSize, count - start);
    const pixels = await dataset.readPixels(split, start, n);
    hasher.add(start * imageBytes, pixels);
    out.set(await model.predict(pixels, n), start * classes);
    progress.update(start + n);
  }
  hasher.verify();
  progress.finish();
  return out;
}
