import { join, resolve } from 'node:path';
import { readFinishedTrials, readRunJson, TRIALS_JSONL, UsageError, type Logger, type RunInputs, type RunJson, type TrialRecord } from '@imgpipe/kit';
import { findUnfinishedRun, newRunDir } from './run-dir.js';
import { changedInputs } from './run-inputs.js';
import type { Trial } from './sweep/sweep.js';
import type { TrainOptions } from './train-options.js';

interface OpenedRun {
  runDir: string;
  /** run.json of the run being resumed. */
  previous?: RunJson;
  /** Its finished trials, checked against this command's sweep. */
  finished: Map<string, TrialRecord>;
}

/** This command's identity: `key` over the inputs' content, `command` over the command line (see run-inputs.ts). */
interface RunIdentity {
  key: string;
  command: string;
  inputs: RunInputs;
}

/** run.json of --resume DIR, read before anything is loaded: a directory that holds no run is a usage error at once. */
export async function readResumedRun(dir: string, shown: string): Promise<RunJson> {
  const previous = await readRunJson(resolve(dir));
  if (!previous) throw new UsageError(`--resume ${shown}: no readable run.json there`);
  return previous;
}

/**
 * The run directory: --resume (refused, naming what changed, when its inputs were other), else an unfinished run
 * of the same inputs, else a new one (saying so when an unfinished run of the same command had other inputs).
 */
export async function openRun(options: TrainOptions, id: RunIdentity, trials: readonly Trial[], log: Logger, resumed?: RunJson): Promise<OpenedRun> {
  let runDir: string;
  let previous: RunJson | undefined;
  if (options.resume) {
    runDir = resolve(options.resume);
    previous = resumed ?? (await readResumedRun(runDir, options.resume));
    if (previous.key !== id.key) {
      const changed = changedInputs(previous.inputs, id.inputs);
      const what = changed ? `: ${changed.join('; ')}` : ' (or by an older train that did not record their content, so they cannot be checked)';
      throw new UsageError(
        `--resume ${options.resume}: that run was started with other inputs${what}; its trials would not match this command's. Rerun with its original inputs, or drop --resume to start a new run`,
      );
    }
  } else {
    const found = await findUnfinishedRun(resolve(options.out), id.key);
    if (found) {
      runDir = found;
      previous = await readRunJson(found);
      log.info(`resuming the unfinished run ${found} of the same command (its finished trials are kept)`);
    } else {
      runDir = await newRunDir(resolve(options.out), id.key);
      const stale = await findUnfinishedRun(resolve(options.out), id.command, 'command');
      if (stale) {
        const changed = changedInputs((await readRunJson(stale))?.inputs, id.inputs);
        const why = changed ? `its inputs changed since (${changed.join('; ')})` : "an older train started it without recording its inputs' content";
        log.warn(`not resuming the unfinished run ${stale} of this command: ${why}; starting a new run ${runDir}`);
      }
    }
  }
  const finished = previous ? await readFinishedTrials(runDir) : new Map<string, TrialRecord>();
  for (const record of finished.values()) {
    const planned = trials[record.index];
    if (!planned || planned.id !== record.trial || JSON.stringify(planned.params) !== JSON.stringify(record.params)) {
      throw new UsageError(
        `${join(runDir, TRIALS_JSONL)}: trial ${record.trial} does not match this command's sweep; start a new run (another --out)`,
      );
    }
  }
  return { runDir, ...(previous ? { previous } : {}), finished };
}
