import { appendFile, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { csvString, readCsvRows } from './csv.js';
import { InputError } from './errors.js';
import { withFileErrors } from './file-errors.js';
import { exists, writeFileAtomic } from './files.js';
import type { Logger } from './log.js';
import { RESULTS_CSV, TRIALS_CSV, TRIALS_JSONL, type TrialParams } from './run-dir.js';

/**
 * The trial files of a run directory (see run-dir.ts): trials.jsonl (train appends one line per epoch and per
 * finished trial), trials.csv and results.csv (train rewrites them after each trial; eval-model fills results.csv's
 * test columns). Their record types, readers and writers.
 */

export interface EpochRecord {
  epoch: number;
  train_loss: number;
  train_accuracy: number;
  val_loss: number;
  val_accuracy: number;
  seconds: number;
}

/** One finished trial, as written to trials.jsonl (event 'trial') and trials.csv. */
export interface TrialRecord {
  trial: string;
  index: number;
  params: TrialParams;
  seed: number;
  status: 'ok' | 'failed';
  reason?: string;
  /** Epochs trained (fewer than params.epochs after early stopping or a failure). */
  epochs_run: number;
  /** The epoch whose weights were kept (the last, or the best val loss with --patience). */
  best_epoch: number;
  train_loss: number;
  train_accuracy: number;
  val_loss: number;
  val_accuracy: number;
  seconds: number;
  history: EpochRecord[];
}

/** One line of trials.jsonl. */
type JsonlLine = ({ event: 'epoch'; trial: string } & EpochRecord) | ({ event: 'trial' } & TrialRecord);

/** trials.jsonl's text for these finished trials: each trial's epoch lines, then its record. */
function trialLines(records: readonly TrialRecord[]): string {
  const lines: string[] = [];
  for (const record of records) {
    for (const epoch of record.history) lines.push(JSON.stringify({ event: 'epoch', trial: record.trial, ...epoch }));
    lines.push(JSON.stringify({ event: 'trial', ...record }));
  }
  return lines.map((l) => `${l}\n`).join('');
}

/** trials.jsonl written whole (atomically) with these finished trials, in this order. */
export function writeTrialsJsonl(dir: string, records: readonly TrialRecord[]): Promise<void> {
  return writeFileAtomic(join(dir, TRIALS_JSONL), trialLines(records));
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
    await writeTrialsJsonl(
      dir,
      [...finished.values()].sort((a, b) => a.index - b.index),
    );
    return new TrialLog(join(dir, TRIALS_JSONL));
  }

  /** Each line goes out in one write, in order. */
  append(line: JsonlLine): Promise<void> {
    const text = `${JSON.stringify(line)}\n`;
    this.queue = this.queue.then(() => withFileErrors(this.path, () => appendFile(this.path, text)));
    return this.queue;
  }
}

const TRIAL_COLUMNS = [
  'trial',
  'status',
  'lr',
  'layer_size',
  'dropout',
  'batch_size',
  'epochs',
  'epochs_run',
  'best_epoch',
  'train_loss',
  'train_accuracy',
  'val_loss',
  'val_accuracy',
  'seconds',
  'seed',
  'reason',
] as const;

/** The hyper-parameter columns of trials.csv and results.csv. */
const PARAM_COLUMNS = ['lr', 'layer_size', 'dropout', 'batch_size', 'epochs'] as const;

/** The seed's results columns; eval-model fills test_loss and test_accuracy for the best model. */
const RESULT_COLUMNS = [
  'model',
  'backbone',
  'lr',
  'layer_size',
  'dropout',
  'batch_size',
  'epochs',
  'train_loss',
  'train_accuracy',
  'val_loss',
  'val_accuracy',
  'test_loss',
  'test_accuracy',
  'best',
  'status',
] as const;

/** Eight significant digits, as the run's tables hold numbers; empty for a missing value. */
function tableNumber(value: number): string {
  return Number.isFinite(value) ? String(Number(value.toPrecision(8))) : '';
}

/** trials.csv and results.csv for these trials (in sweep order), written atomically. */
export async function writeTrialTables(
  dir: string,
  records: readonly TrialRecord[],
  options: { backbone: string; bestTrial?: string },
): Promise<void> {
  const sorted = [...records].sort((a, b) => a.index - b.index);
  const trials = sorted.map((r) => ({
    trial: r.trial,
    status: r.status,
    ...r.params,
    epochs_run: r.epochs_run,
    best_epoch: r.best_epoch || '',
    train_loss: tableNumber(r.train_loss),
    train_accuracy: tableNumber(r.train_accuracy),
    val_loss: tableNumber(r.val_loss),
    val_accuracy: tableNumber(r.val_accuracy),
    seconds: r.seconds.toFixed(2),
    seed: r.seed,
    reason: r.reason ?? '',
  }));
  const results = sorted.map((r) => ({
    model: r.trial,
    backbone: options.backbone,
    ...r.params,
    train_loss: tableNumber(r.train_loss),
    train_accuracy: tableNumber(r.train_accuracy),
    val_loss: tableNumber(r.val_loss),
    val_accuracy: tableNumber(r.val_accuracy),
    test_loss: '',
    test_accuracy: '',
    best: r.trial === options.bestTrial,
    status: r.status,
  }));
  await writeFileAtomic(join(dir, TRIALS_CSV), await csvString(TRIAL_COLUMNS, trials, { forSpreadsheets: true }));
  await writeFileAtomic(join(dir, RESULTS_CSV), await csvString(RESULT_COLUMNS, results, { forSpreadsheets: true }));
}

/**
 * Fill test_loss and test_accuracy in the run's results.csv on the row(s) of the evaluated trial (column `model`),
 * adding the columns when absent. Returns how many rows were updated (0 when there is no results.csv).
 */
export async function updateResults(
  runDir: string,
  trial: string | null,
  metrics: { test_loss: number; test_accuracy: number },
  log: Logger,
  tta?: string,
): Promise<number> {
  const path = join(runDir, RESULTS_CSV);
  if (!(await exists(path))) return 0;
  const { columns, rows } = await readCsvRows(Readable.from([await readFile(path)]), { source: path, forSpreadsheets: true });
  if (!columns.includes('model')) throw new InputError(`${path}: no 'model' column to find trial ${trial} in (found: ${columns.join(',')})`);
  for (const column of ['test_loss', 'test_accuracy', ...(tta ? ['test_tta'] : [])]) if (!columns.includes(column)) columns.push(column);
  let updated = 0;
  for (const row of rows) {
    const match = trial !== null ? row.model === trial : row.best === 'true';
    if (!match) continue;
    row.test_loss = tableNumber(metrics.test_loss);
    row.test_accuracy = tableNumber(metrics.test_accuracy);
    if (tta) row.test_tta = tta;
    updated++;
  }
  if (updated === 0) log.warn(`${path}: no row for trial ${trial}; test metrics are only in eval.json and the model card`);
  await writeFileAtomic(path, await csvString(columns, rows, { forSpreadsheets: true }));
  return updated;
}

/** One epoch of a trial as read back (a value the run did not record is undefined). */
export interface TrialEpochPoint {
  epoch: number;
  train_loss?: number | undefined;
  train_accuracy?: number | undefined;
  val_loss?: number | undefined;
  val_accuracy?: number | undefined;
}

/** One trial of a run as readers (eval-model's report and plots) need it: read back from trials.jsonl or trials.csv. */
export interface TrialSummary {
  id: string;
  params: Record<string, number>;
  status: string;
  reason?: string;
  epochs_run?: number;
  best_epoch?: number;
  train_loss: number | null;
  train_accuracy: number | null;
  val_loss: number | null;
  val_accuracy: number | null;
  history: TrialEpochPoint[];
}

const finite = (value: unknown): number | null => (typeof value === 'number' && Number.isFinite(value) ? value : null);

async function readOptional(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new InputError(`${path}: cannot read (${(error as Error).message})`, { cause: error });
  }
}

/**
 * The trials of a run from trials.jsonl: one JSON object per line; lines with an `event` other than 'trial' are
 * other records (start, epoch) and skipped; a trial seen twice (a resumed run) keeps its last record. Without
 * trials.jsonl, the rows of trials.csv (no per-epoch history, so no learning curves). [] when the run has neither
 * (a model evaluated with --model/--data).
 */
export async function readTrials(runDir: string): Promise<TrialSummary[]> {
  const path = join(runDir, TRIALS_JSONL);
  const text = await readOptional(path);
  if (text === undefined) return readTrialTable(join(runDir, TRIALS_CSV));
  const byId = new Map<string, TrialSummary>();
  const lines = text.split('\n');
  const last = lines.findLastIndex((line) => line.trim() !== '');
  lines.forEach((line, n) => {
    if (!line.trim()) return;
    let value: Record<string, unknown>;
    try {
      value = JSON.parse(line) as Record<string, unknown>;
    } catch (error) {
      // A run killed mid-write leaves a cut last line: skip it rather than refusing to evaluate.
      if (n === last) return;
      throw new InputError(`${path}: line ${n + 1} is not JSON (${(error as Error).message})`, { cause: error });
    }
    if (value.event !== undefined && value.event !== 'trial') return;
    const id = value.trial ?? value.id;
    if (typeof id !== 'string' || !Array.isArray(value.history)) return;
    const params = Object.fromEntries(
      Object.entries((value.params as Record<string, unknown>) ?? {}).filter(([, v]) => typeof v === 'number'),
    ) as Record<string, number>;
    const history = (value.history as Record<string, unknown>[]).map((e, i) => ({
      epoch: finite(e.epoch) ?? i + 1,
      train_loss: finite(e.train_loss) ?? undefined,
      train_accuracy: finite(e.train_accuracy) ?? undefined,
      val_loss: finite(e.val_loss) ?? undefined,
      val_accuracy: finite(e.val_accuracy) ?? undefined,
    }));
    byId.set(id, {
      id,
      params,
      status: typeof value.status === 'string' ? value.status : 'unknown',
      ...(typeof value.reason === 'string' ? { reason: value.reason } : {}),
      ...(finite(value.epochs_run) !== null ? { epochs_run: finite(value.epochs_run)! } : {}),
      ...(finite(value.best_epoch) !== null ? { best_epoch: finite(value.best_epoch)! } : {}),
      train_loss: finite(value.train_loss),
      train_accuracy: finite(value.train_accuracy),
      val_loss: finite(value.val_loss),
      val_accuracy: finite(value.val_accuracy),
      history,
    });
  });
  return [...byId.values()].sort((a, b) => a.id.localeCompare(b.id));
}

async function readTrialTable(path: string): Promise<TrialSummary[]> {
  const text = await readOptional(path);
  if (text === undefined) return [];
  const { rows } = await readCsvRows(Readable.from([text]), { source: path, required: ['trial'], forSpreadsheets: true });
  const value = (cell: string | undefined) => (cell === undefined || cell.trim() === '' ? null : finite(Number(cell)));
  return rows
    .map((row) => ({
      id: row.trial!,
      params: Object.fromEntries(PARAM_COLUMNS.filter((k) => value(row[k]) !== null).map((k) => [k, value(row[k])!])),
      status: row.status || 'unknown',
      ...(row.reason ? { reason: row.reason } : {}),
      train_loss: value(row.train_loss),
      train_accuracy: value(row.train_accuracy),
      val_loss: value(row.val_loss),
      val_accuracy: value(row.val_accuracy),
      history: [],
    }))
    .sort((a, b) => a.id.localeCompare(b.id));
}
