import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { InputError } from './errors.js';
import { writeJsonAtomic } from './files.js';
import type { BackboneInfo } from './model-dir.js';

/**
 * The run directory (train writes it, eval-model, review-labels and upload-s3 read it): run.json, trials.jsonl
 * (streamed: one line per epoch and per finished trial, so a killed run can resume), trials.csv and results.csv
 * (rewritten atomically after each trial), model/ (the best trial), then eval-model's eval.json, predictions.csv,
 * report.html and plots/. This module names the files and owns run.json; run-trials.ts owns the trial files.
 */
export const RUN_FORMAT = 'imgpipe-run/1';
export const RUN_FILE = 'run.json';
export const TRIALS_JSONL = 'trials.jsonl';
export const TRIALS_CSV = 'trials.csv';
export const RESULTS_CSV = 'results.csv';
export const MODEL_DIR = 'model';
export const EVAL_FILE = 'eval.json';
export const REPORT_FILE = 'report.html';
export const PREDICTIONS_FILE = 'predictions.csv';
export const PLOTS_DIR = 'plots';

/** One point of the search space: the seed's hyper-parameters. */
export interface TrialParams {
  lr: number;
  layer_size: number;
  dropout: number;
  batch_size: number;
  epochs: number;
}

export type RunStatus = 'running' | 'done' | 'failed';

/**
 * Everything a run's trials depend on, by content: the dataset (its manifest's sha256), the backbone (the sha256 of
 * its files, not only its name or path) and the sweep's settings. Recorded in run.json as `inputs`; its sha256 is
 * the run's key, so a run is resumed only onto the very inputs it started with.
 */
export interface RunInputs {
  dataset_manifest_sha256: string;
  backbone: string;
  backbone_sha256: string;
  feature_layer: string;
  preprocess: string;
  search_space: { [K in keyof TrialParams]: number[] };
  strategy: 'grid' | 'random';
  hyper_param_runs: number;
  seed: number;
  patience: number | null;
  augment: 'none' | 'flip';
}

/** run.json's timings: the sweep's, and fine-tuning's when it ran. */
export interface RunTimings {
  feature_extraction_seconds: number;
  features_from_cache: boolean;
  head_training_seconds: number;
  total_seconds: number;
  fine_tune_seconds?: number;
}

/** What the sweep was asked (run.json `params`). */
export interface RunParams {
  strategy: 'grid' | 'random';
  hyper_param_runs: number;
  search_space: RunInputs['search_space'];
  patience: number | null;
  max_failed_trials: number | null;
  extract_batch_size: number;
  augment: 'none' | 'flip';
  trials: number;
  fine_tune: { mode: string; epochs: number; lr: number | string } | null;
}

/**
 * run.json. A run planned as tasks holds only the identity fields (format, id, status, key, mode, created) until
 * its finish task writes the rest; a single-process train writes the rest when it starts. `FineTune` is what
 * --fine-tune recorded (train's FineTuneRecord).
 */
export interface RunJson<FineTune extends object = Record<string, unknown>> {
  format: typeof RUN_FORMAT;
  id: string;
  status: RunStatus;
  /** sha256 of `inputs` (dataset, backbone content, search space, seed...): an unfinished run with the same key is resumed. */
  key: string;
  /** The command line's identity (train's commandKey); absent in runs written before `inputs` was recorded. */
  command_key?: string;
  inputs?: RunInputs;
  /** 'tasks': planned by train --task plan and finished by train --task finish. */
  mode?: 'tasks';
  /** Extraction shards of a run planned as tasks. */
  shards?: number;
  project?: string | null;
  created?: string;
  /** When the run was resumed, oldest first. */
  resumed?: string[];
  params?: RunParams;
  seed?: number;
  device?: { requested: string; head: string; tfjs_backend: string; backbone: string };
  backbone?: { spec: string } & BackboneInfo;
  dataset?: {
    path: string;
    manifest_sha256: string;
    classes: string[];
    image_size: number;
    counts: { train: number; val: number };
    training_rows: number;
  };
  versions?: Record<string, string>;
  /** Once finished (done or failed). */
  timings?: RunTimings;
  finished?: string;
  /** Once done: the best trial on validation, whose head model/ holds. */
  best?: { trial: string; params: TrialParams; val_accuracy: number; val_loss: number };
  fine_tune?: FineTune;
  failed_trials?: number;
}

/** run.json of `dir`; undefined when it is missing or unreadable (a run directory still being made, or none). */
export async function readRunJson(dir: string): Promise<RunJson | undefined> {
  try {
    return JSON.parse(await readFile(join(dir, RUN_FILE), 'utf8')) as RunJson;
  } catch {
    return undefined;
  }
}

/** run.json of `dir`; undefined when there is none, an InputError naming the file when it is not readable JSON. */
export async function readRunJsonChecked(dir: string): Promise<RunJson | undefined> {
  const path = join(dir, RUN_FILE);
  try {
    return JSON.parse(await readFile(path, 'utf8')) as RunJson;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new InputError(`${path}: not readable JSON (${(error as Error).message})`, { cause: error });
  }
}

export function writeRunJson<FineTune extends object>(dir: string, run: RunJson<FineTune>): Promise<void> {
  return writeJsonAtomic(join(dir, RUN_FILE), run);
}
