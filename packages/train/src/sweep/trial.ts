import { Head, type FeatureSet, type HeadSnapshot, type Tf } from '@imgpipe/engines';
import { messageOf, type EpochRecord, type TrialRecord } from '@imgpipe/kit';
import type { Trial } from './sweep.js';

export type LayersModelLike = ReturnType<Head['toLayersModel']>;

export interface TrialFeatures {
  train: FeatureSet;
  val: FeatureSet;
  dim: number;
  classes: number;
}

interface RunTrialOptions {
  /** Stop after this many epochs without a lower val loss, keeping the best epoch's weights. */
  patience?: number;
  onEpoch?(record: EpochRecord): void | Promise<void>;
  onBatch?(done: number, total: number): void;
  /** Called when a trial succeeded, before its head is disposed; `model()` builds the head as a layers model. */
  keep?(record: TrialRecord, model: () => LayersModelLike): Promise<void>;
  /** Tests: make this trial fail as a crash would. */
  injectFailure?: boolean;
}

/** Train one head on cached features. Failures (NaN loss, out of memory, a crash) become a failed record. */
export async function runTrial(tf: Tf, features: TrialFeatures, trial: Trial, options: RunTrialOptions = {}): Promise<TrialRecord> {
  const started = performance.now();
  const history: EpochRecord[] = [];
  const { params } = trial;
  const base = { trial: trial.id, index: trial.index, params, seed: trial.seed };
  let head: Head | undefined;
  try {
    head = new Head(tf, { inputDim: features.dim, classes: features.classes, ...params, seed: trial.seed });
    let best: { epoch: EpochRecord; snapshot?: HeadSnapshot } | undefined;
    let sinceBest = 0;
    for (let epoch = 1; epoch <= params.epochs; epoch++) {
      const epochStart = performance.now();
      if (options.injectFailure && epoch === 1) throw new Error('injected failure (a test hook)');
      const train = await head.trainEpoch(features.train, options.onBatch);
      if (!Number.isFinite(train.loss)) throw new Error(`training loss is ${train.loss} in epoch ${epoch} (lr ${params.lr} too high?)`);
      const val = await head.evaluate(features.val);
      if (!Number.isFinite(val.loss)) throw new Error(`validation loss is ${val.loss} in epoch ${epoch}`);
      const record: EpochRecord = {
        epoch,
        train_loss: train.loss,
        train_accuracy: train.accuracy,
        val_loss: val.loss,
        val_accuracy: val.accuracy,
        seconds: (performance.now() - epochStart) / 1000,
      };
      history.push(record);
      await options.onEpoch?.(record);
      if (options.patience !== undefined) {
        if (!best || record.val_loss < best.epoch.val_loss) {
          best = { epoch: record, snapshot: epoch < params.epochs ? await head.snapshot() : undefined };
          sinceBest = 0;
        } else if (++sinceBest >= options.patience) {
          break;
        }
      } else {
        best = { epoch: record };
      }
    }
    const kept = best!;
    if (kept.epoch !== history.at(-1) && kept.snapshot) head.restore(kept.snapshot);
    const result: TrialRecord = {
      ...base,
      status: 'ok',
      epochs_run: history.length,
      best_epoch: kept.epoch.epoch,
      train_loss: kept.epoch.train_loss,
      train_accuracy: kept.epoch.train_accuracy,
      val_loss: kept.epoch.val_loss,
      val_accuracy: kept.epoch.val_accuracy,
      seconds: (performance.now() - started) / 1000,
      history,
    };
    if (options.keep) {
      let model: LayersModelLike | undefined;
      const trained = head;
      try {
        await options.keep(result, () => (model ??= trained.toLayersModel()));
      } finally {
        model?.dispose();
      }
    }
    return result;
  } catch (error) {
    const nan = Number.NaN;
    return {
      ...base,
      status: 'failed',
      reason: messageOf(error),
      epochs_run: history.length,
      best_epoch: 0,
      train_loss: nan,
      train_accuracy: nan,
      val_loss: nan,
      val_accuracy: nan,
      seconds: (performance.now() - started) / 1000,
      history,
    };
  } finally {
    head?.dispose();
  }
}

/** Highest val accuracy; ties: lower val loss, then the earlier trial. */
export function isBetter(a: TrialRecord, b: TrialRecord | undefined): boolean {
  if (a.status !== 'ok') return false;
  if (b?.status !== 'ok') return true;
  if (a.val_accuracy !== b.val_accuracy) return a.val_accuracy > b.val_accuracy;
  if (a.val_loss !== b.val_loss) return a.val_loss < b.val_loss;
  return a.index < b.index;
}

export function pickBest(records: readonly TrialRecord[]): TrialRecord | undefined {
  let best: TrialRecord | undefined;
  for (const r of records) if (isBetter(r, best)) best = r;
  return best;
}
