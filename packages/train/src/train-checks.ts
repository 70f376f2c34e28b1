import { UsageError, type Dataset } from '@imgpipe/kit';
import type { FineTuneSettings } from './fine-tune/fine-tune.js';

/** --fine-tune-epochs, --fine-tune-lr, --fine-tune-patience and --fine-tune-workers, checked before anything is loaded. */
export function checkFineTuneSettings({ epochs, lr, workers, patience }: FineTuneSettings): void {
  if (!Number.isInteger(epochs) || epochs < 1) throw new UsageError(`expected --fine-tune-epochs to be an integer >= 1, got ${epochs}`);
  if (lr !== undefined && !(lr > 0 && Number.isFinite(lr))) throw new UsageError(`expected --fine-tune-lr to be a positive number, got ${lr}`);
  if (patience !== undefined && (!Number.isInteger(patience) || patience < 1))
    throw new UsageError(`expected --fine-tune-patience to be an integer >= 1, got ${patience}`);
  if (workers !== undefined && (!Number.isInteger(workers) || workers < 1))
    throw new UsageError(`expected --fine-tune-workers to be an integer >= 1, got ${workers}`);
}

/** A sweep needs training images, and validation images to pick the best trial on. */
export function checkSplits(dataset: Dataset): void {
  const { splits } = dataset.manifest;
  if (splits.train.count === 0) throw new UsageError(`dataset ${dataset.dir} has no training images; rerun prep-data with a larger --train-pct`);
  if (splits.val.count === 0)
    throw new UsageError(
      `dataset ${dataset.dir} has no validation images, and the best trial is picked on validation; rerun prep-data with --val-pct > 0`,
    );
}
