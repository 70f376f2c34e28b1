import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import {
  FailureError,
  messageOf,
  trackTemp,
  untrackTemp,
  UsageError,
  type Dataset,
  type Logger,
  type ProgressEvent,
  type BackboneInfo,
  type TrialRecord,
  type RunJson,
  type RunTimings,
} from '@imgpipe/kit';
import type { Tf } from '@imgpipe/engines';
import { fineTune, type FineTuneResult, type FineTuneSettings } from './fine-tune.js';
import { writeFailedRun } from '../run-record.js';

/** Where fine-tuning writes its model, in the run directory, until the model is written. */
export const FINE_TUNE_DIR = '.fine-tune';

/** What --fine-tune did, in run.json and card.json: both results, and which model was kept. */
export type FineTuneRecord = Omit<FineTuneResult, 'backboneFiles' | 'headModelJson' | 'backboneSha256'> & {
  kept: 'fine-tuned' | 'sweep';
  before: { val_accuracy: number; val_loss: number; train_accuracy: number; train_loss: number };
  after: { val_accuracy: number; val_loss: number; train_accuracy: number; train_loss: number };
  backbone_sha256: string;
};

interface FineTuneStep {
  record: FineTuneRecord;
  /** The fine-tuned model's files, when it is kept (its validation accuracy did not drop). */
  kept?: { backboneFiles: string[]; headModelJson: string; backboneInfo: BackboneInfo };
}

interface FineTuneStepInput {
  tf: Tf;
  dataset: Dataset;
  settings: FineTuneSettings;
  winner: TrialRecord;
  backboneInfo: BackboneInfo;
  backboneFiles: string[];
  headModelJson: string;
  runDir: string;
  /** run.json so far and the sweep's timings: written as failed when fine-tuning fails. */
  run: RunJson;
  timings: RunTimings;
  log: Logger;
  onProgress?: (event: ProgressEvent) => void;
  /** The kept fine-tuned backbone on ONNX Runtime (backbone-features' convertTuned), when it converts. */
  toOnnx?: (tuned: { files: string[]; info: BackboneInfo }) => Promise<{ files: string[]; info: BackboneInfo } | undefined>;
}

/** After the sweep: fine-tune the backbone with the best head, kept only when validation accuracy does not drop. */
export async function fineTuneBest(input: FineTuneStepInput): Promise<FineTuneStep> {
  const { settings, winner, backboneInfo, runDir, log } = input;
  const lr = settings.lr ?? winner.params.lr / 10;
  const outDir = join(runDir, FINE_TUNE_DIR);
  await rm(outDir, { recursive: true, force: true });
  trackTemp(outDir); // a signal removes it (and what the fine-tuning workers were writing there); train removes it when done
  let tuned: FineTuneResult;
  try {
    tuned = await fineTune({
      tf: input.tf,
      dataset: input.dataset,
      backboneModelJson: input.backboneFiles[0]!,
      backboneInfo,
      headModelJson: input.headModelJson,
      mode: settings.mode,
      ...(settings.patience ? { patience: settings.patience } : {}),
      ...(settings.bnStatistics ? { bnStatistics: settings.bnStatistics } : {}),
      epochs: settings.epochs,
      lr,
      batchSize: winner.params.batch_size,
      seed: winner.seed,
      ...(settings.workers ? { workers: settings.workers } : {}),
      outDir,
      log,
      ...(input.onProgress ? { onProgress: input.onProgress } : {}),
    });
  } catch (error) {
    await rm(outDir, { recursive: true, force: true });
    untrackTemp(outDir);
    await writeFailedRun(runDir, input.run, input.timings);
    throw error instanceof UsageError
      ? error
      : new FailureError(
          `fine-tuning ${winner.trial} failed: ${messageOf(error)}; the sweep's results are in ${runDir} (rerun without --fine-tune to write its model)`,
          { cause: error },
        );
  }
  // Kept only when validation accuracy does not drop (the sweep's number is on the same val split).
  const kept = tuned.val_accuracy >= winner.val_accuracy;
  const { backboneFiles, headModelJson, backboneSha256, ...rest } = tuned;
  const record: FineTuneRecord = {
    ...rest,
    kept: kept ? 'fine-tuned' : 'sweep',
    before: { val_accuracy: winner.val_accuracy, val_loss: winner.val_loss, train_accuracy: winner.train_accuracy, train_loss: winner.train_loss },
    after: { val_accuracy: tuned.val_accuracy, val_loss: tuned.val_loss, train_accuracy: tuned.train_accuracy, train_loss: tuned.train_loss },
    backbone_sha256: backboneSha256,
  };
  log.info(
    `fine-tuning: val_accuracy ${winner.val_accuracy.toFixed(4)} -> ${tuned.val_accuracy.toFixed(4)} in ${tuned.seconds.toFixed(1)}s; keeping the ${kept ? 'fine-tuned model' : "sweep's model (fine-tuning lowered val accuracy)"}`,
  );
  if (!kept) return { record };
  const tfjs = { files: backboneFiles, info: { ...backboneInfo, sha256: backboneSha256 } };
  const onnx = await input.toOnnx?.(tfjs);
  const saved = onnx ?? tfjs;
  return { record, kept: { backboneFiles: saved.files, headModelJson, backboneInfo: saved.info } };
}
