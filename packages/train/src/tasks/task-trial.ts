import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createFeatureSet, loadTf } from '@imgpipe/engines';
import { FailureError, InputError, writeJsonAtomic, type Dataset, type Logger, type TrialRecord } from '@imgpipe/kit';
import { saveHeadDir } from '../sweep/best-head.js';
import { describeParams, type Trial } from '../sweep/sweep.js';
import { checkIndex, readShardPart, shardPartFile } from './task-extract.js';
import { verifyPlanInputs } from './task-inputs.js';
import type { RunPlan, ShardPart } from './task-plan.js';
import { runTrial, type TrialFeatures } from '../sweep/trial.js';
import { epochPause, injectsFailure, type TrialHooks } from '../trial-hooks.js';

/** One file per trial: <run>/trials/<id>.json (the record, written last) and <run>/trials/<id>.head/ (an ok trial's head). */
const TRIALS_DIR = 'trials';

export function trialFile(runDir: string, trial: Trial): string {
  return join(runDir, TRIALS_DIR, `${trial.id}.json`);
}

export function trialHeadDir(runDir: string, trial: Trial): string {
  return join(runDir, TRIALS_DIR, `${trial.id}.head`);
}

export async function readTrialRecord(runDir: string, trial: Trial): Promise<TrialRecord | undefined> {
  try {
    const record = JSON.parse(await readFile(trialFile(runDir, trial), 'utf8')) as TrialRecord;
    for (const key of ['train_loss', 'train_accuracy', 'val_loss', 'val_accuracy'] as const) record[key] ??= Number.NaN;
    return record;
  } catch {
    return undefined;
  }
}

/** Every shard's features, in split order; a shard not yet extracted, or damaged, is an error naming its task. */
async function readShardFeatures(runDir: string, plan: RunPlan, dataset: Dataset): Promise<TrialFeatures> {
  const dim = plan.feature_dim;
  const missing: number[] = [];
  const damaged: string[] = [];
  const read = new Map<ShardPart, Float32Array>();
  for (const [k, parts] of plan.shards.entries()) {
    for (const part of parts) {
      const result = await readShardPart(runDir, part, dim);
      if ('features' in result) read.set(part, result.features);
      else if ('problem' in result)
        damaged.push(
          `${shardPartFile(runDir, part)}: ${result.problem}; rerun train --task extract --run ${runDir} --index ${k} to extract it again`,
        );
      else if (!missing.includes(k)) missing.push(k);
    }
  }
  if (damaged.length > 0) throw new InputError(damaged.join('\n'));
  if (missing.length > 0) {
    throw new FailureError(
      `extraction shards ${missing.join(',')} of ${runDir} are not done; run train --task extract --run ${runDir} --index K for each first`,
    );
  }
  const sets = [];
  for (const split of ['train', 'val'] as const) {
    const features = new Float32Array(dataset.manifest.splits[split].count * dim);
    for (const part of plan.shards.flat().filter((p) => p.split === split)) features.set(read.get(part)!, part.start * dim);
    sets.push(createFeatureSet(features, await dataset.labels(split), dim, plan.classes));
  }
  return { train: sets[0]!, val: sets[1]!, dim, classes: plan.classes };
}

/** `train --task trial --index K`: trial K on the shards' features; its record (and head) in files of its own. */
export async function runTrialTask(runDir: string, plan: RunPlan, index: number, log: Logger, hooks: TrialHooks = {}): Promise<TrialRecord> {
  checkIndex(index, plan.trials.length, `${plan.trials.length} trials`);
  const trial = plan.trials[index]!;
  const dataset = await verifyPlanInputs(runDir, plan);
  const done = await readTrialRecord(runDir, trial);
  if (done) {
    log.info(`trial ${trial.id} is already done (${done.status}); nothing to do`);
    return done;
  }
  const features = await readShardFeatures(runDir, plan, dataset);
  const { tf } = await loadTf(plan.options.device, log);
  log.info(`trial ${index + 1}/${plan.trials.length} ${trial.id}: ${describeParams(trial.params)}`);
  const record = await runTrial(tf, features, trial, {
    ...(plan.options.patience !== undefined ? { patience: plan.options.patience } : {}),
    injectFailure: injectsFailure(hooks, trial.id),
    keep: (kept, model) => saveHeadDir(trialHeadDir(runDir, trial), model(), kept),
    onEpoch(epoch) {
      log.debug(
        `${trial.id} epoch ${epoch.epoch}/${trial.params.epochs} val_loss ${epoch.val_loss.toFixed(4)} val_accuracy ${epoch.val_accuracy.toFixed(4)}`,
      );
      return epochPause(hooks);
    },
  });
  await writeJsonAtomic(trialFile(runDir, trial), record);
  if (record.status === 'failed') log.warn(`trial ${trial.id} failed: ${record.reason}`);
  else
    log.info(
      `trial ${trial.id} done: val_accuracy ${record.val_accuracy.toFixed(4)} val_loss ${record.val_loss.toFixed(4)} (${record.seconds.toFixed(1)}s)`,
    );
  return record;
}
