import { resolve } from 'node:path';
import { integerFlag, UsageError, writePointer, type CliContext } from '@imgpipe/core';
import { extractShard } from './task-extract.js';
import { finishRun } from './task-finish.js';
import { planPointer, planRun, readPlan } from './task-plan.js';
import { runTrialTask } from './task-trial.js';
import type { TrainOptions } from './train.js';

/** `train --task plan|extract|trial|finish`: one step of the sweep, as a scheduler runs it. */
export async function runTaskCommand(args: Record<string, unknown>, context: CliContext, sweepOptions: () => Promise<TrainOptions>): Promise<void> {
  const task = String(args.task);
  const log = context.log;
  if (task === 'plan') {
    if (args.run !== undefined || args.index !== undefined) throw new UsageError('--task plan takes the sweep flags and --out [--run-id ID]; --run and --index go with the other tasks');
    const options = await sweepOptions();
    const shards = integerFlag(args, 'shards', 1);
    const { runDir, plan } = await planRun({ ...options, shards, ...(args['run-id'] !== undefined ? { runId: String(args['run-id']) } : {}) }, log);
    writePointer(context.stdout, planPointer(runDir, plan));
    return;
  }
  if (args.run === undefined) throw new UsageError(`--task ${task} needs --run DIR (the directory train --task plan made)`);
  const runDir = resolve(context.cwd, String(args.run));
  const plan = await readPlan(runDir);
  if (task === 'finish') {
    writePointer(context.stdout, await finishRun(runDir, plan, log));
    return;
  }
  if (args.index === undefined) throw new UsageError(`--task ${task} needs --index K`);
  const index = integerFlag(args, 'index', 0);
  if (task === 'extract') {
    await extractShard(runDir, plan, index, log);
    return;
  }
  const env = context.env;
  await runTrialTask(runDir, plan, index, log, {
    ...(env.IMGPIPE_TEST_FAIL_TRIALS ? { failTrials: new Set(env.IMGPIPE_TEST_FAIL_TRIALS.split(',')) } : {}),
    ...(env.IMGPIPE_TEST_EPOCH_DELAY_MS ? { epochDelayMs: Number(env.IMGPIPE_TEST_EPOCH_DELAY_MS) } : {}),
  });
}
