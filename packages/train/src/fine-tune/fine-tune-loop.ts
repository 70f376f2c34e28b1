import { createProgress, createRng, deriveSeed, shuffleInPlace, silentLogger } from '@imgpipe/kit';
import { oneHot, readRows } from './fine-tune-data.js';
import { accumulate } from './fine-tune-optimizer.js';
import { logEpoch } from './fine-tune-record.js';
import { BestEpoch, scheduledLr } from './fine-tune-schedule.js';
import type { FineTuneEpoch, FineTuneOptions, FineTuneRun } from './fine-tune-types.js';

/** How a fine-tuning run trains, validates and saves (in this thread, or across workers). */
interface FineTuneEngine {
  /**
   * One optimizer step on `count` images: the gradient of their mean loss, summed over micro-batches of at most
   * `microBatch` images, applied at learning rate `lr`. Returns their mean loss and accuracy.
   */
  step(pixels: Uint8Array, targets: Float32Array, count: number, lr: number): Promise<{ loss: number; accuracy: number }>;
  /** Loss and accuracy on the val split in inference mode. */
  validate(): Promise<{ loss: number; accuracy: number }>;
  /** Save the current weights (backbone/ and head/ under options.outDir). */
  save(): Promise<void>;
}

/** One micro-batch's part of a step: its summed loss and accuracy (over its images), and its mean loss's gradient. */
interface MicroBatchStep {
  lossSum: number;
  correct: number;
  gradients: Float32Array[];
}

/**
 * One optimizer step (FineTuneEngine.step) on `count` images in micro-batches of at most `microBatch`:
 * `micro(from, n)` computes images from..from+n-1's part; their gradients, weighted by n / count, sum to the gradient
 * of the whole batch's mean loss, which `apply` applies. Returns the batch's mean loss and accuracy. The in-process
 * and the worker fine-tuning differ only in `micro` and `apply`.
 */
export async function microBatchStep(
  count: number,
  microBatch: number,
  micro: (from: number, n: number) => Promise<MicroBatchStep>,
  apply: (gradients: Float32Array[]) => unknown,
): Promise<{ loss: number; accuracy: number }> {
  let gradients: Float32Array[] | undefined;
  let loss = 0;
  let correct = 0;
  for (let from = 0; from < count; from += microBatch) {
    const n = Math.min(microBatch, count - from);
    const part = await micro(from, n);
    loss += part.lossSum;
    correct += part.correct;
    gradients = accumulate(gradients, part.gradients, n / count);
  }
  await apply(gradients!);
  return { loss: loss / count, accuracy: correct / count };
}

/**
 * The epochs: a seeded shuffle of the training rows per epoch, batches of options.batchSize, the learning rate warmed
 * up then decayed over all the steps (scheduledLr), validation after every epoch, the best epoch's weights saved, and
 * early stopping after options.patience epochs without a better one.
 */
export async function trainEpochs(options: FineTuneOptions, engine: FineTuneEngine): Promise<FineTuneRun> {
  const { dataset, epochs, lr, batchSize, log = silentLogger } = options;
  const size = options.backboneInfo.input_size;
  const imageBytes = size * size * 3;
  const classes = dataset.manifest.classes.length;
  const labels = await dataset.labels('train');
  const count = labels.length;
  const batches = Math.ceil(count / batchSize);
  const rng = createRng(deriveSeed(options.seed, 'fine-tune'));
  const keeper = new BestEpoch(options.patience);
  const history: FineTuneEpoch[] = [];
  for (let epoch = 1; epoch <= epochs; epoch++) {
    const epochStart = performance.now();
    const progress = createProgress({
      label: `fine-tune epoch ${epoch}/${epochs}`,
      total: count,
      unit: 'images',
      quiet: log.quiet,
      onEvent: options.onProgress,
    });
    const order = shuffleInPlace(
      Int32Array.from({ length: count }, (_, i) => i),
      rng,
    );
    const rowsOf = (b: number) => order.subarray(b * batchSize, Math.min(count, (b + 1) * batchSize));
    let lossSum = 0;
    let correct = 0;
    let next = readRows(dataset, 'train', rowsOf(0), imageBytes);
    for (let b = 0; b < batches; b++) {
      const rows = rowsOf(b);
      const pixels = await next;
      if (b + 1 < batches) next = readRows(dataset, 'train', rowsOf(b + 1), imageBytes); // read while this batch trains
      const step = await engine.step(
        pixels,
        oneHot(rows, labels, classes),
        rows.length,
        scheduledLr(lr, (epoch - 1) * batches + b, epochs * batches),
      );
      if (!Number.isFinite(step.loss)) throw new Error(`fine-tuning loss is ${step.loss} in epoch ${epoch} (--fine-tune-lr ${lr} too high?)`);
      lossSum += step.loss * rows.length;
      correct += step.accuracy * rows.length;
      const done = Math.min(count, (b + 1) * batchSize);
      progress.update(done, `loss ${(lossSum / done).toFixed(4)}`);
    }
    const trainSeconds = (performance.now() - epochStart) / 1000;
    progress.finish();
    const val = await engine.validate();
    const record = {
      epoch,
      train_loss: lossSum / count,
      train_accuracy: correct / count,
      val_loss: val.loss,
      val_accuracy: val.accuracy,
      seconds: (performance.now() - epochStart) / 1000,
    };
    history.push(record);
    const best = keeper.offer(record);
    logEpoch(log, epochs, record, count, trainSeconds, best);
    if (best) await engine.save();
    if (keeper.stop && epoch < epochs) {
      log.info(
        `fine-tuning stopped early: no better val accuracy in ${options.patience} epoch${options.patience === 1 ? '' : 's'} (--fine-tune-patience); keeping epoch ${keeper.best!.epoch}`,
      );
      break;
    }
  }
  return { history, best: keeper.best! };
}
