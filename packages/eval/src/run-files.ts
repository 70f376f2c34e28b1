import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { argmaxRows, csvString, writeFileAtomic, writeJsonAtomic, type DatasetRow } from '@imgpipe/kit';
import { formatFloat32 } from './metrics.js';

/** The columns of predictions.csv for these labels. */
function predictionColumns(labels: readonly string[]): string[] {
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
