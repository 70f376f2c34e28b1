import type { Logger } from '@imgpipe/kit';

/**
 * TF.js WebAssembly has one heap of at most 4 GiB, and running out aborts the module (every later TF.js call fails).
 * A training step holds about six float32 copies of every layer's output per image (measured on MobileNet v1 0.5 at
 * 224 with BatchNorm: a 1.39 GB heap for 8 images, 2.68 GB for 16, for 7.7 M layer-output floats per image), so
 * fine-tuning on wasm caps its batch to what fits in 3 GiB.
 */
const BUDGET_BYTES = 3 * 2 ** 30;
const BYTES_PER_OUTPUT_FLOAT = 6 * 4;

/**
 * The micro-batch fine-tuning runs on wasm: batchSize, or less when a shard of it, one per worker, would not fit a
 * worker's heap. Then every step accumulates the gradients of ceil(batchSize / micro-batch) micro-batches, so the
 * optimizer still steps on batches of batchSize (as many steps, each slower by the extra passes' overhead); said in a
 * warning, with what it changes: nothing with frozen BatchNormalization statistics, each micro-batch's statistics with
 * --fine-tune-bn-statistics update.
 */
export function wasmMicroBatch(
  batchSize: number,
  workers: number,
  outputFloatsPerImage: number,
  bnStatistics: 'frozen' | 'update',
  log: Logger,
): number {
  const shard = Math.ceil(batchSize / workers);
  const fits = wasmTrainingBatch(shard, outputFloatsPerImage);
  if (fits >= shard) return batchSize;
  const micro = fits * workers;
  const where = workers > 1 ? ` in each of ${workers} workers` : '';
  const bn =
    bnStatistics === 'frozen'
      ? 'the same updates as one batch (BatchNormalization statistics are frozen)'
      : `BatchNormalization normalises each micro-batch${workers > 1 ? "'s shards" : ''} with its own statistics`;
  log.warn(
    `fine-tuning batches of ${batchSize} as ${Math.ceil(batchSize / micro)} micro-batches of at most ${micro}, gradients accumulated: a training step of ${shard} images${where} needs about ${((shard * outputFloatsPerImage * BYTES_PER_OUTPUT_FLOAT) / 2 ** 30).toFixed(1)} GiB of TF.js wasm's 4 GiB heap; ${bn}, each step slower by the extra passes`,
  );
  return micro;
}

/** The largest batch (at most batchSize, at least 1) whose training step fits the wasm heap. */
export function wasmTrainingBatch(batchSize: number, outputFloatsPerImage: number): number {
  return Math.max(1, Math.min(batchSize, Math.floor(BUDGET_BYTES / (BYTES_PER_OUTPUT_FLOAT * outputFloatsPerImage))));
}

/** Floats per image of every layer's output (a layers model's layers' outputShape, batch dimension left out). */
export function outputFloatsPerImage(layers: { outputShape: unknown }[]): number {
  let total = 0;
  for (const layer of layers) {
    const shapes = (Array.isArray((layer.outputShape as unknown[])[0]) ? layer.outputShape : [layer.outputShape]) as (number | null)[][];
    for (const shape of shapes) total += shape.slice(1).reduce<number>((a, b) => a * (b ?? 1), 1);
  }
  return total;
}
