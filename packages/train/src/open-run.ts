import { join, resolve } from 'node:path';
import { sha256, UsageError, type Dataset, type Logger } from '@imgpipe/kit';
import { findUnfinishedRun, newRunDir, readFinishedTrials, readRunJson, type RunJson } from './run-dir.js';
import type { Trial } from './sweep.js';
import type { TrialRecord } from './trial.js';
import type { TrainOptions } from './train-options.js';

export interface OpenedRun {
  runDir: string;
  /** run.json of the run being resumed. */
  previous?: RunJson;
  /** Its finished trials, checked against this command's sweep. */
  finished: Map<string, TrialRecord>;
}

/** Identity of the command: an unfinished run with the same key is resumed. */
export function runKey(dataset: Dataset, options: TrainOptions): string {
  return sha256(
    JSON.stringify({
      dataset: dataset.manifestSha256,
      backbone: options.backbone,
      feature_layer: options.featureLayer ?? null,
      preprocess: options.preprocess ?? null,
      space: options.space,
      strategy: options.strategy,
      runs: options.runs,
      seed: options.seed,
      patience: options.patience ?? null,
      ...(options.augment === 'flip' ? { augment: 'flip' } : {}),
    }),
  );
}

/** The run directory: --resume, else an unfinished run of the same command, else a new one. */
export async function openRun(options: TrainOptions, key: string, trials: readonly Trial[], log: Logger): Promise<OpenedRun> {
  let runDir: string;
  let previous: RunJson | undefined;
  if (options.resume) {
    runDir = resolve(options.resume);
    previous = await readRunJson(runDir);
    if (!previous) throw new UsageError(`--resume ${options.resume}: no readable run.json there`);
    if (previous.key !== key) {
      throw new UsageError(`--resume ${options.resume}: that run was started with other settings (dataset, backbone, search space, seed or patience); rerun its original command, or drop --resume`);
    }
  } else {
    const found = await findUnfinishedRun(resolve(options.out), key);
    if (found) {
      runDir = found;
      previous = await readRunJson(found);
      log.info(`resuming the unfinished run ${found} of the same command (its finished trials are kept)`);
    } else {
      runDir = await newRunDir(resolve(options.out), key);
    }
  }
  const finished = previous ? await readFinishedTrials(runDir) : new Map<string, TrialRecord>();
  for (const record of finished.values()) {
    const planned = trials[record.index];
    if (!planned || planned.id !== record.trial || JSON.stringify(planned.params) !== JSON.stringify(record.params)) {
      throw new UsageError(`${join(runDir, 'trials.jsonl')}: trial ${record.trial} does not match this command's sweep; start a new run (another --out)`);
    }
  }
  return { runDir, ...(previous ? { previous } : {}), finished };
}
