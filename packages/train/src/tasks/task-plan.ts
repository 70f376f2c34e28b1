import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { backboneSourceSha256, verifyPixelFile } from '@imgpipe/engines';
import {
  exists,
  InputError,
  openDataset,
  UsageError,
  writeJsonAtomic,
  type Dataset,
  type Logger,
  type Pointer,
  readRunJson,
  RUN_FORMAT,
  writeRunJson,
} from '@imgpipe/kit';
import { openBackbone } from '../backbone-features.js';
import { commandKey } from '../run-inputs.js';
import { findUnfinishedRun, newRunDir } from '../run-dir.js';
import { planTrials, type Trial } from '../sweep/sweep.js';
import { checkSplits } from '../train-checks.js';
import type { TrainOptions } from '../train-options.js';

/**
 * plan.json: everything the later tasks (extract, trial, finish) need, so each of them takes only --run DIR and
 * --index K. Written once by `train --task plan`; no task writes it afterwards.
 */
export const PLAN_FILE = 'plan.json';
export const PLAN_FORMAT = 'imgpipe-plan/1';

/** What the tasks reuse of the command that planned the run. */
export type PlannedOptions = Pick<
  TrainOptions,
  | 'dataDir'
  | 'space'
  | 'strategy'
  | 'runs'
  | 'seed'
  | 'device'
  | 'backbone'
  | 'featureLayer'
  | 'preprocess'
  | 'cacheDir'
  | 'extractBatchSize'
  | 'patience'
  | 'maxFailedTrials'
  | 'projectName'
>;

/** Images [start, start+count) of one split; start is a multiple of the extraction batch size. */
export interface ShardPart {
  split: 'train' | 'val';
  start: number;
  count: number;
}

export interface RunPlan {
  format: typeof PLAN_FORMAT;
  id: string;
  key: string;
  created: string;
  options: PlannedOptions;
  trials: Trial[];
  /** Extraction shard K: its parts (empty when the splits hold fewer batches than shards). */
  shards: ShardPart[][];
  feature_dim: number;
  classes: number;
  /** What every task checks before it works (task-inputs.ts): the plan's inputs by content. */
  inputs: PlanInputs;
}

export interface PlanInputs {
  dataset_manifest_sha256: string;
  /** sha256 of the backbone's files (run-inputs.ts). */
  backbone_sha256: string;
}

interface PlanOptions extends TrainOptions {
  /** Number of extraction shards (tasks). */
  shards: number;
  /** Name of the run directory under `out` (default: a new timestamped one, or the unfinished plan of the same command). */
  runId?: string;
}

/**
 * Exactly `shards` shards: the train then val batches (of the extraction batch size, so a shard's batches are the
 * ones a single process runs) cut into contiguous runs of whole batches, as even as they go.
 */
export function planShards(counts: { train: number; val: number }, batchSize: number, shards: number): ShardPart[][] {
  const batches: ShardPart[] = [];
  for (const split of ['train', 'val'] as const) {
    for (let start = 0; start < counts[split]; start += batchSize) batches.push({ split, start, count: Math.min(batchSize, counts[split] - start) });
  }
  return Array.from({ length: shards }, (_, k) => {
    const parts: ShardPart[] = [];
    for (const batch of batches.slice(Math.floor((k * batches.length) / shards), Math.floor(((k + 1) * batches.length) / shards))) {
      const last = parts.at(-1);
      if (last && last.split === batch.split) last.count += batch.count;
      else parts.push({ ...batch });
    }
    return parts;
  });
}

export async function readPlan(runDir: string): Promise<RunPlan> {
  const path = join(runDir, PLAN_FILE);
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch {
    throw new UsageError(`--run ${runDir}: no ${PLAN_FILE} there; create the run with train --task plan first`);
  }
  let plan: RunPlan;
  try {
    plan = JSON.parse(text) as RunPlan;
  } catch (error) {
    throw new InputError(
      `${path}: not valid JSON (${(error as Error).message}); the file is damaged or cut short: plan the run again (train --task plan with another --run-id)`,
      { cause: error },
    );
  }
  if (plan?.format !== PLAN_FORMAT) throw new InputError(`${path}: expected format ${PLAN_FORMAT}, got ${String(plan?.format)}`);
  if (typeof plan.inputs?.dataset_manifest_sha256 !== 'string' || typeof plan.inputs.backbone_sha256 !== 'string') {
    throw new InputError(
      `${path}: records no input hashes (written by an older train, or damaged), so its tasks cannot check their inputs; plan the run again`,
    );
  }
  return plan;
}

export function planPointer(runDir: string, plan: RunPlan): Pointer {
  return { kind: 'run', path: runDir, plan: join(runDir, PLAN_FILE), shards: plan.shards.length, trials: plan.trials.length };
}

/** `train --task plan`: the run directory, its plan.json and a running run.json; idempotent for the same command. */
export async function planRun(options: PlanOptions, log: Logger): Promise<{ runDir: string; plan: RunPlan; planned: boolean }> {
  if (options.fineTune) throw new UsageError('--fine-tune runs in a single-process train only (drop --task, or drop --fine-tune)');
  if (options.resume) throw new UsageError('--resume goes with a single-process train; a planned run resumes by rerunning its unfinished tasks');
  if (!Number.isInteger(options.shards) || options.shards < 1)
    throw new UsageError(`expected --shards to be a positive integer, got ${options.shards}`);
  if (options.runId !== undefined && !/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(options.runId)) {
    throw new UsageError(`expected --run-id to be a directory name (letters, digits, . _ -), got '${options.runId}'`);
  }
  const dataset = await openDataset(resolve(options.dataDir));
  checkSplits(dataset);
  // Extraction shards read parts of the split files, so the whole files are verified here, once, for all of them.
  for (const split of ['train', 'val'] as const) await verifyPixelFile(dataset, split);
  const trials = planTrials(options.space, options.strategy, options.runs, options.seed);
  const key = commandKey(dataset, options);
  const out = resolve(options.out);
  const runDir = options.runId ? join(out, options.runId) : ((await findPlannedRun(out, key)) ?? (await newRunDir(out, key)));
  const existing = (await exists(join(runDir, PLAN_FILE))) ? await readPlan(runDir) : undefined;
  if (existing) {
    if (existing.key !== key) throw new UsageError(`--run-id ${options.runId}: ${runDir} was planned with other settings; pick another --run-id`);
    log.info(`run ${runDir} is already planned (${existing.shards.length} extraction shards, ${existing.trials.length} trials); nothing to do`);
    return { runDir, plan: existing, planned: false };
  }
  if (await readRunJson(runDir)) throw new UsageError(`${runDir} holds a run without ${PLAN_FILE} (a single-process train); pick another --run-id`);
  const plan = await buildPlan(dataset, options, { runDir, key, trials }, log);
  await writeJsonAtomic(join(runDir, PLAN_FILE), plan);
  await writeRunJson(runDir, { format: RUN_FORMAT, id: plan.id, status: 'running', key, mode: 'tasks', created: plan.created });
  log.info(`run ${runDir}: planned ${plan.shards.length} extraction shards and ${trials.length} trials`);
  return { runDir, plan, planned: true };
}

async function findPlannedRun(out: string, key: string): Promise<string | undefined> {
  const found = await findUnfinishedRun(out, key);
  return found && (await readPlan(found).catch(() => undefined)) ? found : undefined;
}

async function buildPlan(
  dataset: Dataset,
  options: PlanOptions,
  run: { runDir: string; key: string; trials: Trial[] },
  log: Logger,
): Promise<RunPlan> {
  // The backbone is opened once here: a wrong input size fails now rather than in every task, and a built-in
  // backbone is fetched into the cache once. The CPU will do for that, whatever device the tasks use.
  const backbone = await openBackbone({ ...options, device: 'cpu' }, dataset.manifest.image_size, log);
  const featureDim = backbone.info.feature_dim;
  const backboneSha256 = backboneSourceSha256(backbone.info);
  await backbone.dispose();
  const { splits } = dataset.manifest;
  return {
    format: PLAN_FORMAT,
    id: run.runDir.split('/').pop()!,
    key: run.key,
    created: new Date().toISOString(),
    options: {
      dataDir: dataset.dir,
      space: options.space,
      strategy: options.strategy,
      runs: options.runs,
      seed: options.seed,
      device: options.device,
      backbone: options.backbone,
      extractBatchSize: options.extractBatchSize,
      ...(options.featureLayer ? { featureLayer: options.featureLayer } : {}),
      ...(options.preprocess ? { preprocess: options.preprocess } : {}),
      ...(options.cacheDir ? { cacheDir: options.cacheDir } : {}),
      ...(options.patience !== undefined ? { patience: options.patience } : {}),
      ...(options.maxFailedTrials !== undefined ? { maxFailedTrials: options.maxFailedTrials } : {}),
      ...(options.projectName ? { projectName: options.projectName } : {}),
    },
    trials: run.trials,
    shards: planShards({ train: splits.train.count, val: splits.val.count }, options.extractBatchSize, options.shards),
    feature_dim: featureDim,
    classes: dataset.manifest.classes.length,
    inputs: { dataset_manifest_sha256: dataset.manifestSha256, backbone_sha256: backboneSha256 },
  };
}
