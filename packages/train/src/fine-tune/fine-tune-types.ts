import type { BackboneInfo, Dataset, Logger, ProgressEvent, EpochRecord } from '@imgpipe/kit';
import type { Tf } from '@imgpipe/engines';

/**
 * --fine-tune: after the sweep, train a TF.js layers backbone together with the best head, end to end on the training
 * pixels, with the same preprocessing as extraction: all its weights, only its BatchNormalization layers' gamma and
 * beta (bn), or its last N layers with weights up to the feature layer (last:N, conv kernels included; the rest
 * frozen). Every step runs the backbone forward and backward, so this is far slower than the sweep.
 */
export type FineTuneMode = 'all' | 'bn' | `last:${number}`;

/**
 * What BatchNormalization layers normalise with while fine-tuning: frozen (default) = their moving statistics, never
 * updated (inference mode, the usual recipe for a pretrained backbone); update = each batch's statistics, the moving
 * ones following them (training mode, which small batches make noisy).
 */
export type BatchNormStatistics = 'frozen' | 'update';

/** N of mode last:N, undefined for the other modes. */
export function unfrozenLayers(mode: FineTuneMode): number | undefined {
  return mode.startsWith('last:') ? Number(mode.slice('last:'.length)) : undefined;
}

export interface FineTuneSettings {
  mode: FineTuneMode;
  epochs: number;
  /** Default frozen. */
  bnStatistics?: BatchNormStatistics;
  /** Default: the best trial's lr / 10. */
  lr?: number;
  /** Stop after this many epochs without a better val accuracy (FineTuneOptions.patience). */
  patience?: number;
  /** FineTuneOptions.workers. */
  workers?: number;
}

/** A fine-tune epoch is recorded like a trial's epoch. */
export type FineTuneEpoch = EpochRecord;

export interface FineTuneOptions {
  tf: Tf;
  dataset: Dataset;
  /** The backbone's model.json (Backbone.files[0]) and what loadBackbone said about it. */
  backboneModelJson: string;
  backboneInfo: BackboneInfo;
  /** The best trial's head (a layers model.json). */
  headModelJson: string;
  mode: FineTuneMode;
  /** Default frozen. */
  bnStatistics?: BatchNormStatistics;
  epochs: number;
  /** Peak learning rate: warmed up to over the first tenth of the steps, then decayed along a cosine. */
  lr: number;
  /** Images per optimizer step; on wasm split into micro-batches that fit the heap, their gradients accumulated. */
  batchSize: number;
  /** At most this many images per forward and backward pass (all workers together), gradients accumulated up to batchSize. Default: batchSize, or what the wasm heap fits. */
  microBatch?: number;
  seed: number;
  /** Stop after this many epochs without a better val accuracy; the best epoch is kept either way. Default: every epoch runs. */
  patience?: number;
  /**
   * On wasm: worker threads that each train on a contiguous shard of every batch (data-parallel, gradients averaged
   * by shard size), at most the batch size. Default: one per CPU thread, as TF.js backbones on wasm; 1 trains in
   * this thread. Other backends train in this thread.
   */
  workers?: number;
  /** Gets backbone/ (model.json + weights.bin) and head/. */
  outDir: string;
  log?: Logger;
  onProgress?: (event: ProgressEvent) => void;
}

export interface FineTuneResult {
  mode: FineTuneMode;
  bn_statistics: BatchNormStatistics;
  epochs: number;
  /** Epochs that ran (fewer than epochs when --fine-tune-patience stopped it). */
  epochs_run: number;
  /** The epoch whose weights were saved, and whose numbers train_* and val_* are. */
  best_epoch: number;
  lr: number;
  lr_schedule: 'warmup-cosine';
  batch_size: number;
  /** Images per forward and backward pass (all workers together); less than batch_size when the heap forced it. */
  micro_batch: number;
  /** Threads the batches were split across (1: one thread); a rerun with as many reproduces the result. */
  workers: number;
  /** Number of trained values (backbone + head). */
  trained_parameters: number;
  history: FineTuneEpoch[];
  train_loss: number;
  train_accuracy: number;
  val_loss: number;
  val_accuracy: number;
  seconds: number;
  /** The fine-tuned backbone's files (model.json first) and their sha256 as loadBackbone computes it. */
  backboneFiles: string[];
  backboneSha256: string;
  headModelJson: string;
}

export interface FineTuneRun {
  /** Every epoch that ran. */
  history: FineTuneEpoch[];
  /** The epoch whose weights are saved: the highest val accuracy (then lowest val loss). */
  best: FineTuneEpoch;
}
