import { resolve } from 'node:path';
import { UsageError, writePointer, type CliContext } from '@imgpipe/kit';
import { extractShard } from './task-extract.js';
import { finishTask } from './task-finish.js';
import { planPointer, planRun, readPlan } from './task-plan.js';
import { runTrialTask } from './task-trial.js';
import type { TrainOptions } from '../train-options.js';
import type { TrialHooks } from '../trial-hooks.js';

/** `train --task plan|extract|trial|finish`: one step of the sweep, as a scheduler runs it. */
export async function runTaskCommand(
  args: Record<string, unknown>,
  context: CliContext,
  sweepOptions: () => Promise<TrainOptions>,
  hooks: TrialHooks = {},
): Promise<void> {
  const task = String(args.task);
  const log = context.log;
  if (task === 'plan') {
    if (args.run !== undefined || args.index !== undefined)
      throw new UsageError('--task plan takes the sweep flags and --out [--run-id ID]; --run and --index go with the other tasks');
    const options = await sweepOptions();
    const shards = args.shards as number;
    const { runDir, plan } = await planRun({ ...options, shards, ...(args['run-id'] !== undefined ? { runId: String(args['run-id']) } : {}) }, log);
    writePointer(context.stdout, planPointer(runDir, plan));
    return;
  }
  if (args.run === undefined) throw new UsageError(`--task ${task} needs --run DIR (the directory train --task plan made)`);
  const runDir = resolve(context.cwd, String(args.run));
  const plan = await readPlan(runDir);
  if (task === 'finish') {
    writePointer(context.stdout, await finishTask(runDir, plan, log));
    return;
  }
  if (args.index === undefined) throw new UsageError(`--task ${task} needs --index K`);
  const index = args.index as number;
  if (task === 'extract') {
    await extractShard(runDir, plan, index, log);
    return;
  }
  await runTrialTask(runDir, plan, index, log, hooks);
}
