import type { FineTuneEpoch } from './fine-tune-types.js';

/** Warm-up steps of a fine-tuning run of `total` steps: a tenth of them, at least 1. */
export function warmupSteps(total: number): number {
  return Math.max(1, Math.round(total / 10));
}

/**
 * The learning rate of step `step` (0-based) of `total`: a linear warm-up to `lr` over the first warmupSteps (Adam's
 * first updates, on a head and backbone that do not yet agree, are the ones that wreck pretrained weights), then a
 * cosine decay towards 0 over the rest.
 */
export function scheduledLr(lr: number, step: number, total: number): number {
  const warmup = warmupSteps(total);
  if (step < warmup) return (lr * (step + 1)) / warmup;
  const progress = (step - warmup) / Math.max(1, total - warmup);
  return lr * 0.5 * (1 + Math.cos(Math.PI * progress));
}

/**
 * Per-epoch validation: the best epoch so far (highest val accuracy, then lowest val loss), and early stopping once
 * `patience` epochs in a row were not better (no patience: every epoch runs).
 */
export class BestEpoch {
  best: FineTuneEpoch | undefined;
  private since = 0;
  constructor(private readonly patience?: number) {}

  /** Records an epoch; true when it is the new best (its weights are the ones to keep). */
  offer(record: FineTuneEpoch): boolean {
    const best = this.best;
    const better = !best || record.val_accuracy > best.val_accuracy || (record.val_accuracy === best.val_accuracy && record.val_loss < best.val_loss);
    if (better) {
      this.best = record;
      this.since = 0;
    } else {
      this.since += 1;
    }
    return better;
  }

  get stop(): boolean {
    return this.patience !== undefined && this.since >= this.patience;
  }
}
