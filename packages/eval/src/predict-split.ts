import { createProgress, type Dataset, type Logger, type ProgressEvent, type SplitName } from '@imgpipe/kit';
import { PixelHasher, type LoadedModel } from '@imgpipe/engines';
import pLimit from 'p-limit';

/**
 * Probabilities of every image of a split (count x classes, row-major), predicted in batches with progress.
 * Up to model.concurrency batches are in flight (a TF.js wasm worker pool keeps every worker busy); each writes
 * its rows at its own offset, so the output order is the split's, and memory stays at one batch per slot.
 * The pixel file is hashed as it is read and checked against the manifest at the end (an InputError when it changed).
 */
export async function predictSplit(options: {
  model: Pick<LoadedModel, 'labels' | 'concurrency' | 'predict'>;
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
  const batches = Array.from({ length: Math.ceil(count / batchSize) }, (_, b) => b * batchSize);
  let done = 0;
  // The first failure fails the split: a batch that starts, or finishes reading its pixels, after it predicts nothing.
  let failed = false;
  const predictBatch = async (start: number) => {
    if (failed) return;
    const n = Math.min(batchSize, count - start);
    const pixels = await dataset.readPixels(split, start, n);
    if (failed) return;
    hasher.add(start * imageBytes, pixels);
    try {
      out.set(await model.predict(pixels, n), start * classes);
    } catch (error) {
      failed = true;
      throw error;
    }
    done += n;
    progress.update(done);
  };
  const limit = pLimit(Math.max(1, Math.floor(model.concurrency) || 1));
  try {
    await limit.map(batches, predictBatch);
  } catch (error) {
    limit.clearQueue(); // the first failure fails the split: no further batch starts
    throw error;
  }
  hasher.verify();
  progress.finish();
  return out;
}
