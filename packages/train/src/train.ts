import { readFile, rm } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import {
  createFeatureSet,
  createProgress,
  extractFeatures,
  FailureError,
  fileLoadHandler,
  fileSaveHandler,
  formatSeconds,
  loadBackbone,
  loadTf,
  messageOf,
  openDataset,
  replaceDirectory,
  saveModelDir,
  sha256,
  silentLogger,
  tempPathFor,
  UsageError,
  writeJsonAtomic,
  type BackboneInfo,
  type Device,
  type Logger,
  type ModelCard,
  type Pointer,
  type ProgressEvent,
  type Tf,
} from '@imgpipe/core';
import { checkFineTunable, fineTune, type FineTuneResult, type FineTuneSettings } from './fine-tune.js';
import { findUnfinishedRun, newRunDir, readFinishedTrials, readRunJson, RUN_FORMAT, TrialLog, writeRunJson, writeTrialTables, type RunJson } from './run-dir.js';
import { describeParams, planTrials, type SearchSpace, type Strategy, type Trial } from './sweep.js';
import { isBetter, pickBest, runTrial, type LayersModelLike, type TrialFeatures, type TrialRecord } from './trial.js';

export interface TrainOptions {
  /** The dataset directory (prep-data's output). */
  dataDir: string;
  /** Parent of the run directory. */
  out: string;
  /** Continue this run directory (skips its finished trials). */
  resume?: string;
  space: SearchSpace;
  strategy: Strategy;
  /** Random search budget; 0: every combination. */
  runs: number;
  seed: number;
  device: Device;
  backbone: string;
  featureLayer?: string;
  preprocess?: string;
  cacheDir?: string;
  /** Batch size of feature extraction (data.batch_size). */
  extractBatchSize: number;
  patience?: number;
  /** Trials trained at once; default 1 on CPU/wasm, 3 on GPUs. */
  parallel?: number;
  /** Stop the sweep (exit 1) once more trials than this have failed; default: no limit. */
  maxFailedTrials?: number;
  /** After the sweep, train a TF.js layers backbone (all of it, or its BatchNormalization layers) with the best head. */
  fineTune?: FineTuneSettings;
  projectName?: string;
  log?: Logger;
  onProgress?: (event: ProgressEvent) => void;
  /** Test hooks: trial ids that fail as a crash would, and a pause after each epoch. */
  failTrials?: ReadonlySet<string>;
  epochDelayMs?: number;
}

export interface TrainResult {
  runDir: string;
  modelDir: string;
  best: TrialRecord;
  records: TrialRecord[];
  pointer: Pointer;
}

const BEST_HEAD = '.best-head';
const FINE_TUNE_DIR = '.fine-tune';

async function packageVersion(): Promise<string> {
  try {
    return (JSON.parse(await readFile(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }).version;
  } catch {
    return 'unknown';
  }
}

/** The sweep: features once per split, one head per trial, the best (on validation) saved as the model. */
export async function runTrain(options: TrainOptions): Promise<TrainResult> {
  const log = options.log ?? silentLogger;
  const started = performance.now();
  if (options.fineTune) {
    const { epochs, lr } = options.fineTune;
    if (!Number.isInteger(epochs) || epochs < 1) throw new UsageError(`expected --fine-tune-epochs to be an integer >= 1, got ${epochs}`);
    if (lr !== undefined && !(lr > 0 && Number.isFinite(lr))) throw new UsageError(`expected --fine-tune-lr to be a positive number, got ${lr}`);
  }
  const dataset = await openDataset(resolve(options.dataDir));
  const { manifest } = dataset;
  if (manifest.splits.train.count === 0) throw new UsageError(`dataset ${dataset.dir} has no training images; rerun prep-data with a larger --train-pct`);
  if (manifest.splits.val.count === 0) throw new UsageError(`dataset ${dataset.dir} has no validation images, and the best trial is picked on validation; rerun prep-data with --val-pct > 0`);
  const trials = planTrials(options.space, options.strategy, options.runs, options.seed);
  if (options.strategy === 'random' && options.runs > trials.length) {
    log.warn(`--hyper-param-runs ${options.runs} is more than the ${trials.length} distinct combinations; running each once`);
  }
  const key = sha256(
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
    }),
  );

  // The run directory: --resume, else an unfinished run of the same command, else a new one.
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

  const { tf, device, backend } = await loadTf(options.device, log);
  const backbone = await loadBackbone(options.backbone, {
    device: options.device,
    log,
    inputSize: manifest.image_size,
    ...(options.featureLayer ? { featureLayer: options.featureLayer } : {}),
    ...(options.preprocess ? { preprocess: options.preprocess } : {}),
    ...(options.cacheDir ? { cacheDir: options.cacheDir } : {}),
  });
  const backboneInfo: BackboneInfo = backbone.info;
  const backboneFiles = backbone.files;
  if (options.fineTune) {
    // Before the sweep: an ONNX or graph backbone cannot be fine-tuned, and nobody should wait for the sweep to learn that.
    await checkFineTunable(backboneInfo, backboneFiles[0]!, options.fineTune.mode).catch(async (error: unknown) => {
      await backbone.dispose();
      throw error;
    });
  }
  const versions = { node: process.version, tfjs: tf.version.tfjs, imgpipe_train: await packageVersion() };
  const run: RunJson = {
    format: RUN_FORMAT,
    id: runDir.split('/').pop()!,
    status: 'running',
    key,
    project: options.projectName ?? null,
    created: (previous?.created as string | undefined) ?? new Date().toISOString(),
    resumed: previous ? [...((previous.resumed as string[] | undefined) ?? []), new Date().toISOString()] : [],
    params: {
      strategy: options.strategy,
      hyper_param_runs: options.runs,
      search_space: options.space,
      patience: options.patience ?? null,
      max_failed_trials: options.maxFailedTrials ?? null,
      extract_batch_size: options.extractBatchSize,
      trials: trials.length,
      fine_tune: options.fineTune ? { mode: options.fineTune.mode, epochs: options.fineTune.epochs, lr: options.fineTune.lr ?? 'best lr / 10' } : null,
    },
    seed: options.seed,
    device: { requested: options.device, head: device, tfjs_backend: backend, backbone: backbone.device },
    backbone: { spec: options.backbone, ...backboneInfo },
    dataset: { path: dataset.dir, manifest_sha256: dataset.manifestSha256, classes: manifest.classes, image_size: manifest.image_size, counts: { train: manifest.splits.train.count, val: manifest.splits.val.count } },
    versions,
  };
  await writeRunJson(runDir, run);
  log.info(`run ${runDir}: ${trials.length} trials (${options.strategy}), ${finished.size} already finished`);

  // Features: one backbone pass per split, from the cache when it has them.
  let features: TrialFeatures;
  let featureSeconds = 0;
  let featuresFromCache = true;
  try {
    const sets = [];
    for (const split of ['train', 'val'] as const) {
      const extracted = await extractFeatures({
        dataset,
        split,
        backbone,
        batchSize: options.extractBatchSize,
        log,
        ...(options.cacheDir ? { cacheDir: options.cacheDir } : {}),
      });
      featureSeconds += extracted.seconds;
      featuresFromCache &&= extracted.fromCache;
      sets.push(createFeatureSet(extracted.features, await dataset.labels(split), extracted.dim, manifest.classes.length));
    }
    features = { train: sets[0]!, val: sets[1]!, dim: backboneInfo.feature_dim, classes: manifest.classes.length };
  } finally {
    await backbone.dispose();
  }

  const headStarted = performance.now();
  const records = new Map(finished);
  let best = pickBest([...records.values()]);
  const trialLog = await TrialLog.open(runDir, finished);
  const tables = () => writeTrialTables(runDir, [...records.values()], { backbone: backboneInfo.name, ...(best ? { bestTrial: best.trial } : {}) });
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
      injectFailure: options.failTrials?.has(trial.id) ?? false,
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
        return options.epochDelayMs ? new Promise((r) => setTimeout(r, options.epochDelayMs)) : undefined;
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
      log.info(`${position} ${trial.id} done: val_accuracy ${record.val_accuracy.toFixed(4)} val_loss ${record.val_loss.toFixed(4)} train_loss ${record.train_loss.toFixed(4)} (${record.seconds.toFixed(1)}s)`);
    }
  };
  let next = 0;
  const lane = async () => {
    while (next < pending.length) await runOne(pending[next++]!);
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(parallel, pending.length)) }, lane));
  await saving.chain;
  progress.finish();

  const all = trials.map((t) => records.get(t.id)).filter((r): r is TrialRecord => r !== undefined);
  const headSeconds = (performance.now() - headStarted) / 1000;
  const timings = {
    feature_extraction_seconds: featureSeconds,
    features_from_cache: featuresFromCache,
    head_training_seconds: headSeconds,
    total_seconds: (performance.now() - started) / 1000,
  };
  if (stopped) {
    await writeRunJson(runDir, { ...run, status: 'failed', timings, finished: new Date().toISOString() });
    throw new FailureError(`${failures} trials failed, more than --max-failed-trials ${options.maxFailedTrials}; the sweep stopped (see ${join(runDir, 'trials.csv')}); fix the cause and rerun with --resume ${runDir}`);
  }
  const winner = pickBest(all);
  if (!winner) {
    await writeRunJson(runDir, { ...run, status: 'failed', timings, finished: new Date().toISOString() });
    throw new FailureError(`all ${all.length} trials failed (first: ${all[0]?.reason}); see ${join(runDir, 'trials.csv')}`);
  }
  best = winner;
  await tables();
  // The best head is on disk unless the process died between saving a head and logging its trial: retrain it.
  const savedId = await readFile(join(runDir, BEST_HEAD, 'trial.json'), 'utf8').then((t) => (JSON.parse(t) as { trial: string }).trial, () => undefined);
  if (savedId !== winner.trial) {
    log.info(`retraining ${winner.trial} to save its head (same seed, same weights)`);
    const again = await runTrial(tf, features, trials[winner.index]!, {
      ...(options.patience !== undefined ? { patience: options.patience } : {}),
      keep: (record, model) => saveBestHead(runDir, model(), record),
    });
    if (again.status !== 'ok') throw new FailureError(`retraining ${winner.trial} failed: ${again.reason}`);
  }
  const modelDir = join(runDir, 'model');
  const context = { winner, manifest, datasetDir: dataset.dir, manifestSha256: dataset.manifestSha256, backboneInfo, backboneFiles, versions, headModelJson: join(runDir, BEST_HEAD, 'model.json') };
  let fineTuneRecord: FineTuneRecord | undefined;
  if (options.fineTune) {
    const settings = options.fineTune;
    const lr = settings.lr ?? winner.params.lr / 10;
    const outDir = join(runDir, FINE_TUNE_DIR);
    await rm(outDir, { recursive: true, force: true });
    let tuned: FineTuneResult;
    try {
      tuned = await fineTune({
        tf,
        dataset,
        backboneModelJson: backboneFiles[0]!,
        backboneInfo,
        headModelJson: context.headModelJson,
        mode: settings.mode,
        epochs: settings.epochs,
        lr,
        batchSize: winner.params.batch_size,
        seed: winner.seed,
        outDir,
        log,
        ...(options.onProgress ? { onProgress: options.onProgress } : {}),
      });
    } catch (error) {
      await rm(outDir, { recursive: true, force: true });
      await writeRunJson(runDir, { ...run, status: 'failed', timings, finished: new Date().toISOString() });
      throw error instanceof UsageError ? error : new FailureError(`fine-tuning ${winner.trial} failed: ${messageOf(error)}; the sweep's results are in ${runDir} (rerun without --fine-tune to write its model)`, { cause: error });
    }
    // Kept only when validation accuracy does not drop (the sweep's number is on the same val split).
    const kept = tuned.val_accuracy >= winner.val_accuracy;
    const { backboneFiles: _files, headModelJson: _head, backboneSha256, ...rest } = tuned;
    fineTuneRecord = {
      ...rest,
      kept: kept ? 'fine-tuned' : 'sweep',
      before: { val_accuracy: winner.val_accuracy, val_loss: winner.val_loss, train_accuracy: winner.train_accuracy, train_loss: winner.train_loss },
      after: { val_accuracy: tuned.val_accuracy, val_loss: tuned.val_loss, train_accuracy: tuned.train_accuracy, train_loss: tuned.train_loss },
      backbone_sha256: backboneSha256,
    };
    log.info(
      `fine-tuning: val_accuracy ${winner.val_accuracy.toFixed(4)} -> ${tuned.val_accuracy.toFixed(4)} in ${tuned.seconds.toFixed(1)}s; keeping the ${kept ? 'fine-tuned model' : "sweep's model (fine-tuning lowered val accuracy)"}`,
    );
    if (kept) {
      Object.assign(context, { backboneFiles: tuned.backboneFiles, headModelJson: tuned.headModelJson, backboneInfo: { ...backboneInfo, sha256: backboneSha256 } });
    }
  }
  await writeModel(tf, modelDir, { ...context, ...(fineTuneRecord ? { fineTune: fineTuneRecord } : {}) });
  await rm(join(runDir, BEST_HEAD), { recursive: true, force: true });
  await rm(join(runDir, FINE_TUNE_DIR), { recursive: true, force: true });
  const done = {
    ...run,
    status: 'done' as const,
    timings: { ...timings, ...(fineTuneRecord ? { fine_tune_seconds: fineTuneRecord.seconds } : {}), total_seconds: (performance.now() - started) / 1000 },
    best: { trial: winner.trial, params: winner.params, val_accuracy: winner.val_accuracy, val_loss: winner.val_loss },
    ...(fineTuneRecord ? { fine_tune: fineTuneRecord } : {}),
    failed_trials: failures,
    finished: new Date().toISOString(),
  };
  await writeRunJson(runDir, done);
  log.info(`best ${winner.trial} (${describeParams(winner.params)}): val_accuracy ${winner.val_accuracy.toFixed(4)} val_loss ${winner.val_loss.toFixed(4)}; features ${featureSeconds.toFixed(1)}s${featuresFromCache ? ' (cache)' : ''}, heads ${headSeconds.toFixed(1)}s`);
  if (failures > 0) log.warn(`${failures} of ${all.length} trials failed; see ${join(runDir, 'trials.csv')}`);
  return { runDir, modelDir, best: winner, records: all, pointer: { kind: 'run', path: runDir, best: modelDir } };
}

/** The best head so far, in <run>/.best-head (replaced atomically), with the trial it belongs to. */
async function saveBestHead(runDir: string, model: LayersModelLike, record: TrialRecord): Promise<void> {
  const final = join(runDir, BEST_HEAD);
  const temp = tempPathFor(final);
  try {
    await model.save(fileSaveHandler(temp));
    await writeJsonAtomic(join(temp, 'trial.json'), { trial: record.trial, val_accuracy: record.val_accuracy, val_loss: record.val_loss });
    await replaceDirectory(temp, final);
  } catch (error) {
    await rm(temp, { recursive: true, force: true });
    throw error;
  }
}

/** What --fine-tune did, in run.json and card.json: both results, and which model was kept. */
export type FineTuneRecord = Omit<FineTuneResult, 'backboneFiles' | 'headModelJson' | 'backboneSha256'> & {
  kept: 'fine-tuned' | 'sweep';
  before: { val_accuracy: number; val_loss: number; train_accuracy: number; train_loss: number };
  after: { val_accuracy: number; val_loss: number; train_accuracy: number; train_loss: number };
  backbone_sha256: string;
};

async function writeModel(
  tf: Tf,
  modelDir: string,
  context: {
    winner: TrialRecord;
    manifest: Awaited<ReturnType<typeof openDataset>>['manifest'];
    datasetDir: string;
    manifestSha256: string;
    backboneInfo: BackboneInfo;
    backboneFiles: string[];
    versions: Record<string, string>;
    headModelJson: string;
    fineTune?: FineTuneRecord;
  },
): Promise<void> {
  const { winner, manifest, backboneInfo } = context;
  const tuned = context.fineTune?.kept === 'fine-tuned' ? context.fineTune.after : undefined;
  const head = await tf.loadLayersModel(fileLoadHandler(tf.io, context.headModelJson));
  const card: ModelCard = {
    format: 'imgpipe-model/1',
    labels: manifest.classes,
    input: { size: manifest.image_size, channels: 3, fit: manifest.fit },
    preprocess: backboneInfo.preprocess,
    backbone: { ...backboneInfo, path: '' },
    head: { path: 'head/model.json', layer_size: winner.params.layer_size, dropout: winner.params.dropout, lr: winner.params.lr, epochs: winner.params.epochs, batch_size: winner.params.batch_size },
    metrics: {
      train_loss: tuned?.train_loss ?? winner.train_loss,
      train_accuracy: tuned?.train_accuracy ?? winner.train_accuracy,
      val_loss: tuned?.val_loss ?? winner.val_loss,
      val_accuracy: tuned?.val_accuracy ?? winner.val_accuracy,
      epochs_run: winner.epochs_run,
      best_epoch: winner.best_epoch,
    },
    dataset: { manifest_sha256: context.manifestSha256, path: context.datasetDir },
    created: new Date().toISOString(),
    versions: context.versions,
    trial: winner.trial,
    seed: winner.seed,
    ...(context.fineTune ? { fine_tune: context.fineTune } : {}),
  };
  try {
    await saveModelDir(modelDir, { card, backboneFiles: context.backboneFiles, head });
  } finally {
    head.dispose();
  }
}
