import { silentLogger } from '@imgpipe/kit';
import { evaluateSplit } from './fine-tune-data.js';
import { microBatchStep, trainEpochs } from './fine-tune-loop.js';
import { wasmMicroBatch } from './fine-tune-memory.js';
import { fineTuneResult, logStart } from './fine-tune-record.js';
import type { FineTuneOptions, FineTuneResult } from './fine-tune-types.js';
import { FineTuneWorkers, type ShardStep } from './fine-tune-worker-pool.js';

/** Contiguous shard sizes of `n` images over `workers`: the first n % workers get one more. */
export function shardSizes(n: number, workers: number): number[] {
  return Array.from({ length: workers }, (_, i) => Math.floor(n / workers) + (i < n % workers ? 1 : 0));
}

/** The gradient of the whole batch's mean loss: the shards' gradients weighted by shard size, summed in worker order. */
export function averageGradients(steps: ShardStep[]): Float32Array[] {
  const total = steps.reduce((sum, s) => sum + s.count, 0);
  const shards = steps.filter((s) => s.gradients).map((s) => ({ weight: s.count / total, gradients: s.gradients! }));
  return shards[0]!.gradients.map((_, v) => {
    const out = new Float32Array(shards[0]!.gradients[v]!.length);
    for (let j = 0; j < out.length; j++) {
      let sum = 0;
      for (const shard of shards) sum += shard.weight * shard.gradients[v]![j]!;
      out[j] = sum;
    }
    return out;
  });
}

/** Element-wise mean of every worker's arrays, in worker order. */
function meanOf(perWorker: Float32Array[][]): Float32Array[] {
  return perWorker[0]!.map((_, v) => {
    const sum = new Float64Array(perWorker[0]![v]!.length);
    for (const arrays of perWorker) for (let j = 0; j < sum.length; j++) sum[j]! += arrays[v]![j]!;
    return Float32Array.from(sum, (x) => x / perWorker.length);
  });
}

/** `arrays` for each of `count` workers: copies for all but the last, so each can be transferred. */
function copiesFor(count: number, arrays: Float32Array[]): Float32Array[][] {
  return Array.from({ length: count }, (_, i) => (i === count - 1 ? arrays : arrays.map((a) => a.slice())));
}

/**
 * Data-parallel fine-tuning on TF.js wasm (single-threaded in Node): every batch (or micro-batch, when the heap
 * forces one) is split into contiguous shards, one per worker; each computes its shard's gradients; their average (by
 * shard size, summed over micro-batches) is applied by every worker's own Adam, so the trained weights stay identical
 * in all. BatchNorm normalises with its frozen moving statistics (the same in every worker, whatever the split); with
 * bnStatistics 'update' it uses each shard's, the moving statistics follow each worker's shards and are averaged
 * across workers (the moving average of the shards' mean statistics) before every val pass; the same workers share
 * the val batches, and the first saves the model.
 */
export async function fineTuneInWorkers(options: FineTuneOptions, workers: number): Promise<FineTuneResult> {
  const { dataset, backboneInfo: info, mode, epochs, lr, bnStatistics = 'frozen', log = silentLogger } = options;
  const started = performance.now();
  const size = info.input_size;
  const imageBytes = size * size * 3;
  const classes = dataset.manifest.classes.length;
  const pool = await FineTuneWorkers.start(
    workers,
    {
      backboneModelJson: options.backboneModelJson,
      headModelJson: options.headModelJson,
      featureLayer: info.feature_layer,
      mode,
      bnStatistics,
      lr,
      inputSize: size,
      preprocess: info.preprocess,
      classes,
    },
    log,
  );
  try {
    const fits = wasmMicroBatch(options.batchSize, workers, pool.ready.outputFloatsPerImage, bnStatistics, log);
    const microBatch = Math.min(fits, options.microBatch ?? fits);
    const trained = pool.ready.trainedParameters;
    logStart(log, { mode, bnStatistics, trained, epochs, lr, batchSize: options.batchSize, workers });
    const run = await trainEpochs(options, {
      step: (pixels, targets, count, rate) =>
        microBatchStep(
          count,
          microBatch,
          async (offset, n) => {
            let start = offset;
            const sizes = shardSizes(n, workers);
            const steps = await pool.all<ShardStep>((i) => {
              const [from, m] = [start, sizes[i]!];
              start += m;
              const shardPixels = pixels.slice(from * imageBytes, (from + m) * imageBytes);
              const shardTargets = targets.slice(from * classes, (from + m) * classes);
              return {
                message: { type: 'step', pixels: shardPixels, oneHot: shardTargets, count: m },
                transfer: [shardPixels.buffer, shardTargets.buffer],
              };
            });
            return {
              lossSum: steps.reduce((sum, s) => sum + s.loss * s.count, 0),
              correct: steps.reduce((sum, s) => sum + s.accuracy * s.count, 0),
              gradients: averageGradients(steps),
            };
          },
          (gradients) => {
            const copies = copiesFor(workers, gradients);
            return pool.all((i) => ({
              message: { type: 'apply', gradients: copies[i]!, lr: rate },
              transfer: copies[i]!.map((g) => g.buffer as ArrayBuffer),
            }));
          },
        ),
      async validate() {
        await syncBatchNorm(pool, bnStatistics === 'update');
        return evaluateSplit(
          dataset,
          'val',
          microBatch,
          classes,
          (pixels, n, slot) => pool.request<Float32Array>(slot, { type: 'predict', pixels, count: n }, [pixels.buffer as ArrayBuffer]),
          workers,
        );
      },
      save: () => pool.request(0, { type: 'save', outDir: options.outDir }),
    });
    return await fineTuneResult(options.outDir, {
      mode,
      bnStatistics,
      epochs,
      lr,
      batchSize: options.batchSize,
      microBatch,
      workers,
      trained,
      run,
      started,
    });
  } finally {
    await pool.close();
  }
}

/**
 * Every worker's BatchNorm moving statistics replaced by their mean (when they follow the batches: `updated`); every
 * worker's trainable weights must be the same.
 */
export async function syncBatchNorm(pool: FineTuneWorkers, updated = true): Promise<void> {
  const stats = updated ? await pool.all<Float32Array[]>(() => ({ message: { type: 'bn-stats' } })) : [[]];
  if (stats[0]!.length > 0) {
    const copies = copiesFor(pool.count, meanOf(stats));
    await pool.all((i) => ({ message: { type: 'set-bn-stats', stats: copies[i]! }, transfer: copies[i]!.map((s) => s.buffer as ArrayBuffer) }));
  }
  const digests = await pool.all<string>(() => ({ message: { type: 'digest' } }));
  if (new Set(digests).size > 1) throw new Error(`fine-tuning workers' weights differ after the same steps (sha256 ${digests.join(', ')}): a bug`);
}
