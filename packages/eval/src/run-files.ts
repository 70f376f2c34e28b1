import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { argmaxRows, csvString, exists, InputError, readCsvRows, writeFileAtomic, writeJsonAtomic, type DatasetRow, type Logger } from '@imgpipe/kit';
import { formatFloat32 } from './metrics.js';

export const PREDICTIONS_FILE = 'predictions.csv';
export const RESULTS_FILE = 'results.csv';

/** Eight significant digits, as train writes its tables; empty for a missing value. */
export function tableNumber(value: number): string {
  return Number.isFinite(value) ? String(Number(value.toPrecision(8))) : '';
}

/** The columns of predictions.csv for these labels. */
export function predictionColumns(labels: readonly string[]): string[] {
  return ['row', 'index', 'source', 'label', 'category', 'predicted', 'predicted_category', 'correct', ...labels.map((l) => `prob_${l}`)];
}

/**
 * predictions.csv: one line per test image in split order: its row, the dataset's index and source, the true
 * label and category, the predicted ones, and every class probability (float32, shortest exact decimal).
 */
export async function writePredictions(path: string, rows: readonly DatasetRow[], probs: Float32Array, labels: readonly string[]): Promise<void> {
  const classes = labels.length;
  const predicted = argmaxRows(probs, classes);
  const records = rows.map((row, i) => {
    const record: Record<string, unknown> = {
      row: i,
      index: row.index,
      source: row.source,
      label: row.label,
      category: labels[row.label],
      predicted: predicted[i],
      predicted_category: labels[predicted[i]!],
      correct: predicted[i] === row.label,
    };
    labels.forEach((label, c) => {
      record[`prob_${label}`] = formatFloat32(probs[i * classes + c]!);
    });
    return record;
  });
  await writeFileAtomic(path, await csvString(predictionColumns(labels), records, { forSpreadsheets: true }));
}

/** Set metrics.test_* (and top-level `fields`, e.g. tta) in a model's card.json, keeping everything else as it is. */
export async function attachCardMetrics(modelDir: string, metrics: Record<string, number>, fields: Record<string, unknown> = {}): Promise<void> {
  const path = join(modelDir, 'card.json');
  const card = { ...(JSON.parse(await readFile(path, 'utf8')) as { metrics?: Record<string, number> }), ...fields };
  card.metrics = { ...(card.metrics ?? {}), ...metrics };
  await writeJsonAtomic(path, card);
}

/**
 * Fill test_loss and test_accuracy in the run's results.csv on the row(s) of the evaluated trial (column `model`),
 * adding the columns when absent. Returns how many rows were updated (0 when there is no results.csv).
 */
export async function updateResults(runDir: string, trial: string | null, metrics: { test_loss: number; test_accuracy: number }, log: Logger, tta?: string): Promise<number> {
  const path = join(runDir, RESULTS_FILE);
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
