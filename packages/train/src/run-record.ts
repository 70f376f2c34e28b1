import type { Backbone, ConcreteDevice, Tf } from '@imgpipe/engines';
import { packageVersion, type Dataset, RUN_FORMAT, writeRunJson, type RunJson, type RunTimings, type RunInputs } from '@imgpipe/kit';
import type { TrainOptions } from './train-options.js';

/** Versions recorded in run.json and the model card. */
export async function runVersions(tf: Tf): Promise<Record<string, string>> {
  return { node: process.version, tfjs: tf.version_core, imgpipe_train: packageVersion(new URL('../package.json', import.meta.url)) };
}

/** run.json of a starting (or resumed) run: status 'running', what it was asked, and what it runs on. */
export function startedRunJson(
  options: TrainOptions,
  run: {
    runDir: string;
    key: string;
    /** The command key and the inputs the key is the sha256 of (run-inputs.ts). */
    commandKey?: string;
    inputs?: RunInputs;
    previous: RunJson | undefined;
    trials: number;
    device: ConcreteDevice;
    backend: string;
    backbone: Backbone;
    dataset: Dataset;
    versions: Record<string, string>;
  },
): RunJson {
  const { previous, dataset, backbone } = run;
  const { manifest } = dataset;
  return {
    format: RUN_FORMAT,
    id: run.runDir.split('/').pop()!,
    status: 'running',
    key: run.key,
    ...(run.commandKey ? { command_key: run.commandKey } : {}),
    ...(run.inputs ? { inputs: run.inputs } : {}),
    project: options.projectName ?? null,
    created: previous?.created ?? new Date().toISOString(),
    resumed: previous ? [...(previous.resumed ?? []), new Date().toISOString()] : [],
    params: {
      strategy: options.strategy,
      hyper_param_runs: options.runs,
      search_space: options.space,
      patience: options.patience ?? null,
      max_failed_trials: options.maxFailedTrials ?? null,
      extract_batch_size: options.extractBatchSize,
      augment: options.augment ?? 'none',
      trials: run.trials,
      fine_tune: options.fineTune
        ? { mode: options.fineTune.mode, epochs: options.fineTune.epochs, lr: options.fineTune.lr ?? 'best lr / 10' }
        : null,
    },
    seed: options.seed,
    device: { requested: options.device, head: run.device, tfjs_backend: run.backend, backbone: backbone.device },
    backbone: { spec: options.backbone, ...backbone.info },
    dataset: {
      path: dataset.dir,
      manifest_sha256: dataset.manifestSha256,
      classes: manifest.classes,
      image_size: manifest.image_size,
      counts: { train: manifest.splits.train.count, val: manifest.splits.val.count },
      training_rows: manifest.splits.train.count * (options.augment === 'flip' ? 2 : 1),
    },
    versions: run.versions,
  };
}

/** Mark the run failed in run.json, with the timings so far. */
export function writeFailedRun(runDir: string, run: RunJson, timings: RunTimings): Promise<void> {
  return writeRunJson(runDir, { ...run, status: 'failed', timings, finished: new Date().toISOString() });
}
