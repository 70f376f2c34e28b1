import { createProgress, createRng, deriveSeed, shuffleInPlace, silentLogger } from '@imgpipe/kit';
import { evaluateSplit, oneHot, readRows } from './fine-tune-data.js';
import { fineTuneResult, logEpoch, logStart } from './fine-tune-record.js';
import { capWasmBatch } from './fine-tune-memory.js';
import type { FineTuneEpoch, FineTuneOptions, FineTuneResult } from './fine-tune-types.js';
import { FineTuneWorkers, type ShardStep } from './fine-tune-workers.js';

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
 * Data-parallel fine-tuning on TF.js wasm (single-threaded in Node): every batch is split into contiguous shards,
 * one per worker; each computes its shard's gradients; their average (by shard size) is applied by every worker's own
 * Adam, so the trained weights stay identical in all. BatchNorm normalises with its frozen moving statistics (the
 * same in every worker, whatever the split); with bnStatistics 'update' it uses each shard's, the moving statistics
 * follow each worker's shards and are averaged across workers (the moving average of the shards' mean statistics)
 * before every val pass; the same workers share the val batches, and the first saves the model.
 */
export async function fineTuneInWorkers(options: FineTuneOptions, workers: number): Promise<FineTuneResult> {
  const { dataset, backboneInfo: info, mode, epochs, lr, bnStatistics = 'frozen', log = silentLogger } = options;
  const started = performance.now();
  const size = info.input_size;
  const imageBytes = size * size * 3;
  const classes = dataset.manifest.classes.length;
  const pool = await FineTuneWorkers.start(
    workers,
    { backboneModelJson: options.backboneModelJson, headModelJson: options.headModelJson, featureLayer: info.feature_layer, mode, bnStatistics, lr, inputSize: size, preprocess: info.preprocess, classes },
    log,
  );
  try {
    const batchSize = capWasmBatch(options.batchSize, workers, pool.ready.outputFloatsPerImage, log);
    const trained = pool.ready.trainedParameters;
    const labels = await dataset.labels('train');
    const count = labels.length;
    const batches = Math.ceil(count / batchSize);
    const rng = createRng(deriveSeed(options.seed, 'fine-tune'));
    logStart(log, { mode, bnStatistics, trained, epochs, lr, batchSize, workers });
    const history: FineTuneEpoch[] = [];
    for (let epoch = 1; epoch <= epochs; epoch++) {
      const epochStart = performance.now();
      const progress = createProgress({ label: `fine-tune epoch ${epoch}/${epochs}`, total: count, unit: 'images', quiet: log.quiet, onEvent: options.onProgress });
      const order = shuffleInPlace(Int32Array.from({ length: count }, (_, i) => i), rng);
      const rowsOf = (b: number) => order.subarray(b * batchSize, Math.min(count, (b + 1) * batchSize));
      let lossSum = 0;
      let correct = 0;
      let next = readRows(dataset, 'train', rowsOf(0), imageBytes);
      for (let b = 0; b < batches; b++) {
        const rows = rowsOf(b);
        const pixels = await next;
        if (b + 1 < batches) next = readRows(dataset, 'train', rowsOf(b + 1), imageBytes); // read while the workers train
        const targets = oneHot(rows, labels, classes);
        let start = 0;
        const sizes = shardSizes(rows.length, workers);
        const steps = await pool.all<ShardStep>((i) => {
          const [from, n] = [start, sizes[i]!];
          start += n;
          const shardPixels = pixels.slice(from * imageBytes, (from + n) * imageBytes);
          const shardTargets = targets.slice(from * classes, (from + n) * classes);
          return { message: { type: 'step', pixels: shardPixels, oneHot: shardTargets, count: n }, transfer: [shardPixels.buffer, shardTargets.buffer] };
        });
        const loss = steps.reduce((sum, s) => sum + s.loss * s.count, 0) / rows.length;
        if (!Number.isFinite(loss)) throw new Error(`fine-tuning loss is ${loss} in epoch ${epoch} (--fine-tune-lr ${lr} too high?)`);
        lossSum += loss * rows.length;
        correct += steps.reduce((sum, s) => sum + s.accuracy * s.count, 0);
        const gradients = copiesFor(workers, averageGradients(steps));
        await pool.all((i) => ({ message: { type: 'apply', gradients: gradients[i]! }, transfer: gradients[i]!.map((g) => g.buffer as ArrayBuffer) }));
        progress.update(Math.min(count, (b + 1) * batchSize), `loss ${(lossSum / Math.min(count, (b + 1) * batchSize)).toFixed(4)}`);
      }
      const trainSeconds = (performance.now() - epochStart) / 1000;
      progress.finish();
      await syncBatchNorm(pool, bnStatistics === 'update');
      const val = await evaluateSplit(
        dataset,
        'val',
        batchSize,
        classes,
        (pixels, n, slot) => pool.request<Float32Array>(slot, { type: 'predict', pixels, count: n }, [pixels.buffer as ArrayBuffer]),
        workers,
      );
      const record = { epoch, train_loss: lossSum / count, train_accuracy: correct / count, val_loss: val.loss, val_accuracy: val.accuracy, seconds: (performance.now() - epochStart) / 1000 };
      history.push(record);
      logEpoch(log, epochs, record, count, trainSeconds);
    }
    await pool.request(0, { type: 'save', outDir: options.outDir });
    return await fineTuneResult(options.outDir, { mode, bnStatistics, epochs, lr, batchSize, workers, trained, history, started });
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
