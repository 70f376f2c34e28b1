import { createProgress, formatSeconds, type Logger, type TrialRecord, TrialLog, writeTrialTables } from '@imgpipe/kit';
import type { ConcreteDevice, Tf } from '@imgpipe/engines';
import pLimit from 'p-limit';
import { saveBestHead } from './best-head.js';
import { describeParams, type Trial } from './sweep.js';
import type { TrainOptions } from '../train-options.js';
import { epochPause, injectsFailure, type TrialHooks } from '../trial-hooks.js';
import { isBetter, pickBest, runTrial, type LayersModelLike, type TrialFeatures } from './trial.js';

interface SweepInput {
  tf: Tf;
  features: TrialFeatures;
  trials: readonly Trial[];
  runDir: string;
  /** Trials finished by an earlier attempt of this run: not trained again. */
  finished: Map<string, TrialRecord>;
  backboneName: string;
  /** The head's device: picks the default number of parallel trials. */
  device: ConcreteDevice;
  options: TrainOptions;
  /** Test hooks (trial-hooks.ts). */
  hooks: TrialHooks;
  log: Logger;
}

interface SweepOutcome {
  /** Every finished trial, by id (earlier attempts' included). */
  records: Map<string, TrialRecord>;
  /** Failed trials, earlier attempts' included. */
  failures: number;
  /** More trials failed than --max-failed-trials allows: the sweep stopped early. */
  stopped: boolean;
}

/**
 * The sweep loop: the pending trials, `parallel` at a time, each logged to trials.jsonl and the tables, the best
 * head so far saved as it comes; stops once more than --max-failed-trials have failed.
 */
export async function runSweep({
  tf,
  features,
  trials,
  runDir,
  finished,
  backboneName,
  device,
  options,
  hooks,
  log,
}: SweepInput): Promise<SweepOutcome> {
  const records = new Map(finished);
  let best = pickBest([...records.values()]);
  const trialLog = await TrialLog.open(runDir, finished);
  const tables = () => writeTrialTables(runDir, [...records.values()], { backbone: backboneName, ...(best ? { bestTrial: best.trial } : {}) });
  await tables();

  const pending = trials.filter((t) => !records.has(t.id));
  const totalEpochs = pending.reduce((sum, t) => sum + t.params.epochs, 0);
  const progress = createProgress({ label: 'train', total: totalEpochs, unit: 'epochs', quiet: log.quiet, onEvent: options.onProgress });
  let epochsDone = 0;
  let failures = [...records.values()].filter((r) => r.status === 'failed').length;
  let stopped = false;
  const saving = { chain: Promise.resolve() as Promise<unknown> };
  const keepIfBest = (record: TrialRecord, model: () => LayersModelLike) => {
    const step = saving.chain.then(async () => {
      if (!isBetter(record, best)) return;
      await saveBestHead(runDir, model(), record);
      best = record;
    });
    saving.chain = step.catch(() => undefined);
    return step;
  };
  const parallel = options.parallel ?? (device === 'webgpu' || device === 'cuda' ? 3 : 1);
  const headSecondsStart = performance.now();

  const runOne = async (trial: Trial) => {
    if (stopped) return;
    const position = `trial ${trial.index + 1}/${trials.length}`;
    log.info(`${position} ${trial.id}: ${describeParams(trial.params)}`);
    let trialEpochs = 0;
    const record = await runTrial(tf, features, trial, {
      ...(options.patience !== undefined ? { patience: options.patience } : {}),
      injectFailure: injectsFailure(hooks, trial.id),
      keep: keepIfBest,
      onEpoch(epoch) {
        trialEpochs += 1;
        epochsDone += 1;
        void trialLog.append({ event: 'epoch', trial: trial.id, ...epoch });
        const elapsed = (performance.now() - headSecondsStart) / 1000;
        const eta = formatSeconds((elapsed / epochsDone) * (totalEpochs - epochsDone));
        const detail = `${position} epoch ${epoch.epoch}/${trial.params.epochs} train_loss ${epoch.train_loss.toFixed(4)} val_loss ${epoch.val_loss.toFixed(4)} val_accuracy ${epoch.val_accuracy.toFixed(4)} (${epoch.seconds.toFixed(1)}s; sweep eta ${eta})`;
        progress.update(epochsDone, detail);
        log.debug(detail);
        return epochPause(hooks);
      },
    });
    // Early stopping and failures skip epochs: count them as done for the ETA.
    epochsDone += trial.params.epochs - trialEpochs;
    progress.update(epochsDone);
    records.set(trial.id, record);
    await trialLog.append({ event: 'trial', ...record });
    await tables();
    if (record.status === 'failed') {
      failures += 1;
      log.warn(`${position} ${trial.id} failed: ${record.reason}`);
      if (options.maxFailedTrials !== undefined && failures > options.maxFailedTrials) stopped = true;
    } else {
      log.info(
        `${position} ${trial.id} done: val_accuracy ${record.val_accuracy.toFixed(4)} val_loss ${record.val_loss.toFixed(4)} train_loss ${record.train_loss.toFixed(4)} (${record.seconds.toFixed(1)}s)`,
      );
    }
  };
  await pLimit(Math.max(1, parallel)).map(pending, runOne);
  await saving.chain;
  progress.finish();
  return { records, failures, stopped };
}
