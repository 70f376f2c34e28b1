import { join } from 'node:path';
import type { Logger } from '@imgpipe/kit';
import { tfjsFiles } from './fine-tune-data.js';
import type { FineTuneRun } from './fine-tune-types.js';
import type { BatchNormStatistics, FineTuneEpoch, FineTuneMode, FineTuneResult } from './fine-tune-types.js';

/** The line fine-tuning starts with. */
export function logStart(
  log: Logger,
  run: { mode: FineTuneMode; bnStatistics: BatchNormStatistics; trained: number; epochs: number; lr: number; batchSize: number; workers: number },
): void {
  const layers =
    run.mode === 'all'
      ? 'the whole backbone'
      : run.mode === 'bn'
        ? "the backbone's BatchNormalization layers (gamma, beta)"
        : `the backbone's last ${run.mode.slice(5)} layers with weights`;
  const what = `${layers}${run.bnStatistics === 'frozen' ? ' (BatchNormalization statistics frozen)' : ' (BatchNormalization on batch statistics)'}`;
  const split = run.workers > 1 ? ` split across ${run.workers} worker threads` : '';
  log.info(
    `fine-tuning ${what} and the head: ${run.trained} parameters, ${run.epochs} epoch${run.epochs === 1 ? '' : 's'}, lr ${run.lr}, batch ${run.batchSize}${split} (slow: the backbone runs forward and backward on every image)`,
  );
}

/** The line each fine-tuning epoch ends with. */
export function logEpoch(log: Logger, epochs: number, record: FineTuneEpoch, trainedImages: number, trainSeconds: number, best: boolean): void {
  log.info(
    `fine-tune epoch ${record.epoch}/${epochs}: train_loss ${record.train_loss.toFixed(4)} val_loss ${record.val_loss.toFixed(4)} val_accuracy ${record.val_accuracy.toFixed(4)}${best ? ' (best so far: saved)' : ''} (${record.seconds.toFixed(1)}s, ${(trainedImages / trainSeconds).toFixed(1)} training images/s)`,
  );
}

/** The result of a fine-tuning run whose best epoch's model is saved in outDir (backbone/ and head/). */
export async function fineTuneResult(
  outDir: string,
  run: {
    mode: FineTuneMode;
    bnStatistics: BatchNormStatistics;
    epochs: number;
    lr: number;
    batchSize: number;
    microBatch: number;
    workers: number;
    trained: number;
    run: FineTuneRun;
    started: number;
  },
): Promise<FineTuneResult> {
  const saved = await tfjsFiles(join(outDir, 'backbone', 'model.json'));
  const { history, best } = run.run;
  return {
    mode: run.mode,
    bn_statistics: run.bnStatistics,
    epochs: run.epochs,
    epochs_run: history.length,
    best_epoch: best.epoch,
    lr: run.lr,
    lr_schedule: 'warmup-cosine',
    batch_size: run.batchSize,
    micro_batch: run.microBatch,
    workers: run.workers,
    trained_parameters: run.trained,
    history,
    train_loss: best.train_loss,
    train_accuracy: best.train_accuracy,
    val_loss: best.val_loss,
    val_accuracy: best.val_accuracy,
    seconds: (performance.now() - run.started) / 1000,
    backboneFiles: saved.files,
    backboneSha256: saved.hash,
    headModelJson: join(outDir, 'head', 'model.json'),
  };
}
