import { join } from 'node:path';
import { FailureError, TRIALS_CSV, writeRunJson, type Logger, type RunJson, type RunTimings, type TrialRecord } from '@imgpipe/kit';
import type { FineTuneRecord } from './fine-tune/fine-tune-step.js';
import { writeFailedRun } from './run-record.js';
import { describeParams } from './sweep/sweep.js';
import { pickBest } from './sweep/trial.js';

interface FinishRunInput {
  runDir: string;
  /** run.json as the run started: written back as failed or done. */
  run: RunJson;
  /** Every finished trial, in sweep order. */
  records: readonly TrialRecord[];
  /** The sweep's timings: in run.json when the run fails. */
  timings: RunTimings;
  /** Set when more trials failed than --max-failed-trials allows: the message of the FailureError thrown. */
  overBudget?: string | undefined;
  /** Write model/ from the best trial; returns what --fine-tune recorded, when it ran. */
  writeModel(winner: TrialRecord): Promise<FineTuneRecord | undefined>;
  /** run.json's timings once done (default: `timings`). */
  doneTimings?(fineTune: FineTuneRecord | undefined): RunTimings;
  /** Appended to the line naming the best trial. */
  summary?: string;
  log: Logger;
}

/**
 * The end of a run, single-process or as tasks: over the failure budget or without a successful trial, run.json
 * says failed and a FailureError is thrown; else the best trial (on validation) is written as model/ and run.json
 * says done, with the best trial, fine-tuning's record and the failure count. Returns the best trial.
 */
export async function finishRun(input: FinishRunInput): Promise<TrialRecord> {
  const { runDir, run, records, timings, log } = input;
  const failures = records.filter((r) => r.status === 'failed').length;
  if (input.overBudget !== undefined) {
    await writeFailedRun(runDir, run, timings);
    throw new FailureError(input.overBudget);
  }
  const winner = pickBest(records);
  if (!winner) {
    await writeFailedRun(runDir, run, timings);
    throw new FailureError(`all ${records.length} trials failed (first: ${records[0]?.reason}); see ${join(runDir, TRIALS_CSV)}`);
  }
  const fineTune = await input.writeModel(winner);
  await writeRunJson(runDir, {
    ...run,
    status: 'done',
    timings: input.doneTimings?.(fineTune) ?? timings,
    best: { trial: winner.trial, params: winner.params, val_accuracy: winner.val_accuracy, val_loss: winner.val_loss },
    ...(fineTune ? { fine_tune: fineTune } : {}),
    failed_trials: failures,
    finished: new Date().toISOString(),
  });
  log.info(
    `best ${winner.trial} (${describeParams(winner.params)}): val_accuracy ${winner.val_accuracy.toFixed(4)} val_loss ${winner.val_loss.toFixed(4)}${input.summary ?? ''}`,
  );
  if (failures > 0) log.warn(`${failures} of ${records.length} trials failed; see ${join(runDir, TRIALS_CSV)}`);
  return winner;
}
