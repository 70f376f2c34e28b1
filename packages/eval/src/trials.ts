import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { InputError, readCsvRows } from '@imgpipe/kit';
import type { EpochPoint } from './plot-curves.js';

/** One trial of a run, as eval-model needs it: read back from train's trials.jsonl. */
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
  history: EpochPoint[];
}

export const TRIALS_FILE = 'trials.jsonl';
export const TRIALS_TABLE = 'trials.csv';
const PARAM_COLUMNS = ['lr', 'layer_size', 'dropout', 'batch_size', 'epochs'];

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
  const path = join(runDir, TRIALS_FILE);
  const text = await readOptional(path);
  if (text === undefined) return readTrialTable(join(runDir, TRIALS_TABLE));
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
    const params = Object.fromEntries(Object.entries((value.params as Record<string, unknown>) ?? {}).filter(([, v]) => typeof v === 'number')) as Record<string, number>;
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

/** "t002 lr=0.001 layer_size=256": the params that vary across trials first. */
export function trialLabel(trial: TrialSummary): string {
  const shown = PARAM_COLUMNS.filter((k) => k in trial.params);
  return [trial.id, ...shown.map((k) => `${k}=${trial.params[k]}`)].join(' ');
}
