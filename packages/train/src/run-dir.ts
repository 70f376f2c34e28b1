import { appendFile, readdir, readFile, rmdir } from 'node:fs/promises';
import { join } from 'node:path';
import { csvString, exists, removeStaleTemps, withFileErrors, writeFileAtomic, writeJsonAtomic } from '@imgpipe/kit';
import type { EpochRecord, TrialRecord } from './trial.js';

/**
 * The run directory: run.json, trials.jsonl (streamed: one line per epoch and per finished trial, so a killed
 * run can resume), trials.csv and results.csv (rewritten atomically after each trial), model/ (the best trial).
 */
export const RUN_FORMAT = 'imgpipe-run/1';
export const RUN_FILE = 'run.json';
export const TRIALS_JSONL = 'trials.jsonl';
export const TRIALS_CSV = 'trials.csv';
export const RESULTS_CSV = 'results.csv';

export interface RunJson {
  format: typeof RUN_FORMAT;
  id: string;
  status: 'running' | 'done' | 'failed';
  /** sha256 of `inputs` (dataset, backbone content, search space, seed...): an unfinished run with the same key is resumed. */
  key: string;
  /** The command line's identity (run-inputs.ts commandKey); absent in runs written before `inputs` was recorded. */
  command_key?: string;
  [field: string]: unknown;
}

export type JsonlLine = ({ event: 'epoch'; trial: string } & EpochRecord) | ({ event: 'trial' } & TrialRecord);

/** yyyymmdd-hhmm-<4 hex of the key>, unique within `out`. */
export async function newRunDir(out: string, key: string, now = new Date()): Promise<string> {
  const stamp = now.toISOString().replace(/[-:]/g, '').replace('T', '-').slice(0, 13);
  const base = `${stamp}-${key.slice(0, 4)}`;
  for (let n = 0; ; n++) {
    const dir = join(out, n === 0 ? base : `${base}-${n + 1}`);
    if (!(await exists(dir))) return dir;
  }
}

/**
 * Remove run directories under `out` that a killed train left before its first run.json landed: no run.json, and
 * nothing but temp files of processes that are gone. A directory a live writer is filling is kept.
 */
export async function removeAbandonedRunDirs(out: string): Promise<string[]> {
  const entries = await readdir(out, { withFileTypes: true }).catch(() => []);
  const removed: string[] = [];
  for (const entry of entries) {
    if (!entry.isDirectory() || entry.name.startsWith('.')) continue;
    const dir = join(out, entry.name);
    if (await exists(join(dir, RUN_FILE))) continue;
    if ((await removeStaleTemps(dir)).length === 0) continue;
    if ((await readdir(dir)).length > 0) continue;
    await rmdir(dir).catch(() => undefined);
    removed.push(dir);
  }
  return removed;
}

export async function readRunJson(dir: string): Promise<RunJson | undefined> {
  try {
    return JSON.parse(await readFile(join(dir, RUN_FILE), 'utf8')) as RunJson;
  } catch {
    return undefined;
  }
}

export function writeRunJson(dir: string, run: RunJson): Promise<void> {
  return writeJsonAtomic(join(dir, RUN_FILE), run);
}

/** The newest run directory under `out` that was started with the same key (or command key) and did not finish. */
export async function findUnfinishedRun(out: string, key: string, by: 'key' | 'command' = 'key'): Promise<string | undefined> {
  const entries = await readdir(out, { withFileTypes: true }).catch(() => []);
  const names = entries.filter((e) => e.isDirectory()).map((e) => e.name).sort().reverse();
  for (const name of names) {
    const run = await readRunJson(join(out, name));
    const value = by === 'key' ? run?.key : (run?.command_key ?? run?.key);
    if (value === key && run?.status === 'running') return join(out, name);
  }
  return undefined;
}

/** Finished trials recorded in trials.jsonl (a line cut short by a kill is ignored). */
export async function readFinishedTrials(dir: string): Promise<Map<string, TrialRecord>> {
  const finished = new Map<string, TrialRecord>();
  const text = await readFile(join(dir, TRIALS_JSONL), 'utf8').catch(() => '');
  for (const line of text.split('\n')) {
    if (!line.trim()) continue;
    let value: JsonlLine;
    try {
      value = JSON.parse(line) as JsonlLine;
    } catch {
      continue;
    }
    if (value.event === 'trial') {
      const { event: _event, ...record } = value;
      for (const key of ['train_loss', 'train_accuracy', 'val_loss', 'val_accuracy'] as const) record[key] ??= Number.NaN;
      finished.set(record.trial, record);
    }
  }
  return finished;
}

/** Append-only trials.jsonl. On resume it is first rewritten with the finished trials' lines only. */
export class TrialLog {
  private queue: Promise<void> = Promise.resolve();
  constructor(private readonly path: string) {}

  static async open(dir: string, finished: Map<string, TrialRecord>): Promise<TrialLog> {
    const path = join(dir, TRIALS_JSONL);
    const lines: string[] = [];
    for (const record of [...finished.values()].sort((a, b) => a.index - b.index)) {
      for (const epoch of record.history) lines.push(JSON.stringify({ event: 'epoch', trial: record.trial, ...epoch }));
      lines.push(JSON.stringify({ event: 'trial', ...record }));
    }
    await writeFileAtomic(path, lines.map((l) => `${l}\n`).join(''));
    return new TrialLog(path);
  }

  /** Each line goes out in one write, in order. */
  append(line: JsonlLine): Promise<void> {
    const text = `${JSON.stringify(line)}\n`;
    this.queue = this.queue.then(() => withFileErrors(this.path, () => appendFile(this.path, text)));
    return this.queue;
  }
}

const TRIAL_COLUMNS = [
  'trial', 'status', 'lr', 'layer_size', 'dropout', 'batch_size', 'epochs', 'epochs_run', 'best_epoch',
  'train_loss', 'train_accuracy', 'val_loss', 'val_accuracy', 'seconds', 'seed', 'reason',
] as const;

/** The seed's results columns; eval-model fills test_loss and test_accuracy for the best model. */
export const RESULT_COLUMNS = [
  'model', 'backbone', 'lr', 'layer_size', 'dropout', 'batch_size', 'epochs',
  'train_loss', 'train_accuracy', 'val_loss', 'val_accuracy', 'test_loss', 'test_accuracy', 'best', 'status',
] as const;

function fmt(value: number): string {
  return Number.isFinite(value) ? String(Number(value.toPrecision(8))) : '';
}

export async function writeTrialTables(dir: string, records: readonly TrialRecord[], options: { backbone: string; bestTrial?: string }): Promise<void> {
  const sorted = [...records].sort((a, b) => a.index - b.index);
  const trials = sorted.map((r) => ({
    trial: r.trial,
    status: r.status,
    ...r.params,
    epochs_run: r.epochs_run,
    best_epoch: r.best_epoch || '',
    train_loss: fmt(r.train_loss),
    train_accuracy: fmt(r.train_accuracy),
    val_loss: fmt(r.val_loss),
    val_accuracy: fmt(r.val_accuracy),
    seconds: r.seconds.toFixed(2),
    seed: r.seed,
    reason: r.reason ?? '',
  }));
  const results = sorted.map((r) => ({
    model: r.trial,
    backbone: options.backbone,
    ...r.params,
    train_loss: fmt(r.train_loss),
    train_accuracy: fmt(r.train_accuracy),
    val_loss: fmt(r.val_loss),
    val_accuracy: fmt(r.val_accuracy),
    test_loss: '',
    test_accuracy: '',
    best: r.trial === options.bestTrial,
    status: r.status,
  }));
  await writeFileAtomic(join(dir, TRIALS_CSV), await csvString(TRIAL_COLUMNS, trials, { forSpreadsheets: true }));
  await writeFileAtomic(join(dir, RESULTS_CSV), await csvString(RESULT_COLUMNS, results, { forSpreadsheets: true }));
}
