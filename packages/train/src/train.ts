import { rm } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import {
  acquireLock,
  MODEL_DIR,
  openDataset,
  removeStaleLocks,
  removeStaleTemps,
  silentLogger,
  TRIALS_CSV,
  untrackTemp,
  writeRunJson,
  writeTrialTables,
  type Lock,
  type Logger,
  type Pointer,
  type RunTimings,
  type TrialRecord,
} from '@imgpipe/kit';
import { loadTf } from '@imgpipe/engines';
import { convertTuned, extractSplitFeatures, openBackbone } from './backbone-features.js';
import { BEST_HEAD, ensureBestHead } from './sweep/best-head.js';
import { FINE_TUNE_DIR, fineTuneBest } from './fine-tune/fine-tune-step.js';
import { openRun, readResumedRun } from './open-run.js';
import { commandKey, runInputs, runKey } from './run-inputs.js';
import { removeAbandonedRunDirs } from './run-dir.js';
import { runVersions, startedRunJson } from './run-record.js';
import { planTrials } from './sweep/sweep.js';
import { runSweep } from './sweep/sweep-loop.js';
import { checkFineTuneSettings, checkSplits } from './train-checks.js';
import type { TrainOptions } from './train-options.js';
import { finishRun } from './finish-run.js';
import type { TrialHooks } from './trial-hooks.js';
import { writeModel } from './write-model.js';

export type { TrainOptions } from './train-options.js';

interface TrainResult {
  runDir: string;
  modelDir: string;
  best: TrialRecord;
  records: TrialRecord[];
  pointer: Pointer;
}

/** The sweep: features once per split, one head per trial, the best (on validation) saved as the model. */
export async function runTrain(options: TrainOptions, hooks: TrialHooks = {}): Promise<TrainResult> {
  const log = options.log ?? silentLogger;
  const started = performance.now();
  if (options.fineTune) checkFineTuneSettings(options.fineTune);
  const dataset = await openDataset(resolve(options.dataDir));
  checkSplits(dataset);
  const trials = planTrials(options.space, options.strategy, options.runs, options.seed);
  if (options.strategy === 'random' && options.runs > trials.length) {
    log.warn(`--hyper-param-runs ${options.runs} is more than the ${trials.length} distinct combinations; running each once`);
  }
  const command = commandKey(dataset, options);
  const locks: Lock[] = [];
  try {
    return await trainLocked(options, hooks, { dataset, trials, command, locks, log, started });
  } finally {
    for (const lock of locks.reverse()) await lock.release();
  }
}

/**
 * One writer per run: the command's key is locked before a run directory is picked (so two identical commands
 * cannot both start or resume one), and the run directory itself (so --resume cannot join a live run). Which run
 * directory is picked depends on the backbone's content, so it is picked once the backbone is loaded.
 */
async function trainLocked(
  options: TrainOptions,
  hooks: TrialHooks,
  {
    dataset,
    trials,
    command,
    locks,
    log,
    started,
  }: {
    dataset: Awaited<ReturnType<typeof openDataset>>;
    trials: ReturnType<typeof planTrials>;
    command: string;
    locks: Lock[];
    log: Logger;
    started: number;
  },
): Promise<TrainResult> {
  const wait = { waitSeconds: options.waitLockSeconds ?? 0 };
  await removeStaleLocks(resolve(options.out));
  const resumed = options.resume ? await readResumedRun(options.resume, options.resume) : undefined;
  if (options.resume) locks.push(await acquireLock(resolve(options.resume), { what: 'run directory', flag: '--resume', ...wait }));
  else
    locks.push(
      await acquireLock(join(resolve(options.out), `train-${command.slice(0, 16)}`), {
        what: 'run of this same command (dataset, backbone, search space, seed)',
        flag: '--out',
        shown: options.out,
        ...wait,
      }),
    );

  if (!options.resume) await removeAbandonedRunDirs(resolve(options.out));

  const { tf, device, backend } = await loadTf(options.device, log);
  const backbone = await openBackbone(options, dataset.manifest.image_size, log);
  const { info: backboneInfo, files: backboneFiles } = backbone;
  const inputs = runInputs(dataset, options, backboneInfo);
  const key = runKey(inputs);
  let runDir: string;
  let previous: Awaited<ReturnType<typeof openRun>>['previous'];
  let finished: Awaited<ReturnType<typeof openRun>>['finished'];
  try {
    ({ runDir, previous, finished } = await openRun(options, { key, command, inputs }, trials, log, resumed));
    if (!options.resume) locks.push(await acquireLock(runDir, { what: 'run directory', flag: '--out', ...wait }));
    await removeStaleTemps(runDir);
  } catch (error) {
    await backbone.dispose();
    throw error;
  }
  const versions = await runVersions(tf);
  const run = startedRunJson(options, {
    runDir,
    key,
    commandKey: command,
    inputs,
    previous,
    trials: trials.length,
    device,
    backend,
    backbone,
    dataset,
    versions,
  });
  await writeRunJson(runDir, run);
  log.info(`run ${runDir}: ${trials.length} trials (${options.strategy}), ${finished.size} already finished`);
  const extracted = await extractSplitFeatures(dataset, backbone, options, log);
  const { features } = extracted;

  const headStarted = performance.now();
  const { records, failures, stopped } = await runSweep({
    tf,
    features,
    trials,
    runDir,
    finished,
    backboneName: backboneInfo.name,
    device,
    options,
    hooks,
    log,
  });
  const all = trials.map((t) => records.get(t.id)).filter((r): r is TrialRecord => r !== undefined);
  const headSeconds = (performance.now() - headStarted) / 1000;
  const timings: RunTimings = {
    feature_extraction_seconds: extracted.seconds,
    features_from_cache: extracted.fromCache,
    head_training_seconds: headSeconds,
    total_seconds: (performance.now() - started) / 1000,
  };
  const modelDir = join(runDir, MODEL_DIR);
  const winner = await finishRun({
    runDir,
    run,
    records: all,
    timings,
    log,
    overBudget: stopped
      ? `${failures} trials failed, more than --max-failed-trials ${options.maxFailedTrials}; the sweep stopped (see ${join(runDir, TRIALS_CSV)}); fix the cause and rerun with --resume ${runDir}`
      : undefined,
    summary: `; features ${extracted.seconds.toFixed(1)}s${extracted.fromCache ? ' (cache)' : ''}, heads ${headSeconds.toFixed(1)}s`,
    doneTimings: (fineTune) => ({
      ...timings,
      ...(fineTune ? { fine_tune_seconds: fineTune.seconds } : {}),
      total_seconds: (performance.now() - started) / 1000,
    }),
    writeModel: async (winner) => {
      await writeTrialTables(runDir, [...records.values()], { backbone: backboneInfo.name, bestTrial: winner.trial });
      await ensureBestHead(tf, features, { runDir, winner, trial: trials[winner.index]!, patience: options.patience, log });
      const context = {
        augment: options.augment ?? 'none',
        winner,
        manifest: dataset.manifest,
        datasetDir: dataset.dir,
        manifestSha256: dataset.manifestSha256,
        backboneInfo,
        backboneFiles,
        versions,
        headModelJson: join(runDir, BEST_HEAD, 'model.json'),
      };
      const tuned = options.fineTune
        ? await fineTuneBest({
            tf,
            dataset,
            settings: options.fineTune,
            winner,
            backboneInfo: backbone.tunable!.info,
            backboneFiles: backbone.tunable!.files,
            headModelJson: context.headModelJson,
            runDir,
            run,
            timings,
            log,
            toOnnx: (tuned) => convertTuned(tuned, options, log),
            ...(options.onProgress ? { onProgress: options.onProgress } : {}),
          })
        : undefined;
      const fineTuneRecord = tuned?.record;
      await writeModel(tf, modelDir, { ...context, ...tuned?.kept, ...(fineTuneRecord ? { fineTune: fineTuneRecord } : {}), log });
      await rm(join(runDir, BEST_HEAD), { recursive: true, force: true });
      await rm(join(runDir, FINE_TUNE_DIR), { recursive: true, force: true });
      untrackTemp(join(runDir, FINE_TUNE_DIR));
      return fineTuneRecord;
    },
  });
  return { runDir, modelDir, best: winner, records: all, pointer: { kind: 'run', path: runDir, best: modelDir } };
}
