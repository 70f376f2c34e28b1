import { rm } from 'node:fs/promises';
import { basename, dirname, join, relative, resolve } from 'node:path';
import {
  EVAL_FILE,
  exists,
  FailureError,
  InputError,
  MANIFEST_FILE,
  MODEL_DIR,
  openDataset,
  PREDICTIONS_FILE,
  readModelCard,
  readRunJsonChecked,
  readStylesheet,
  readTrials,
  REPORT_FILE,
  RUN_FILE,
  silentLogger,
  updateResults,
  UsageError,
  writeFileAtomic,
  writeJsonAtomic,
  type Logger,
  type Pointer,
  type ProgressEvent,
} from '@imgpipe/kit';
import { loadModel, withTta, type Device, type Tta } from '@imgpipe/engines';
import { EVAL_FORMAT, PLOT_FILES, type EvalResult, type WorstItem } from './eval-result.js';
import { computeMetrics, formatFloat32, worstMistakes } from './metrics.js';
import { modelWeightsSha256 } from './model-hash.js';
import { contactSheetSvg } from './plot-contact-sheet.js';
import { confusionMatrixSvg } from './plot-confusion.js';
import { learningCurvesSvg } from './plot-curves.js';
import { predictSplit } from './predict-split.js';
import { rgbToPng, svgToPng } from './render.js';
import { renderReport } from './report.js';
import { attachCardMetrics, writePredictions } from './run-files.js';
import { trialLabel } from './trials.js';

interface EvalModelOptions {
  /** A run directory (train's output): its model/ is evaluated and the files are written there. */
  runDir?: string | undefined;
  /** A model directory; the default is <runDir>/model. */
  modelDir?: string | undefined;
  /** The dataset directory; the default is the one the run (or the model card) names. */
  dataDir?: string | undefined;
  /** Where the evaluation files go without a run directory; default: the model's parent when it holds run.json. */
  outDir?: string | undefined;
  device: Device;
  batchSize: number;
  /** How many of the most confident mistakes to list and draw; default 16. */
  worst?: number;
  /** The quality gate: a FailureError (exit 1) after writing everything when test accuracy is below it. */
  minAccuracy?: number | undefined;
  cacheDir?: string | undefined;
  /** Test-time augmentation; default: the card's tta (what its test metrics were measured with), else 'none'. */
  tta?: Tta | undefined;
  log?: Logger;
  onProgress?: (event: ProgressEvent) => void;
}

interface EvalModelOutcome {
  result: EvalResult;
  outDir: string;
  modelDir: string;
  pointer: Pointer;
}

/** Run, model and dataset directories from the options, each checked to exist, with errors naming the flag. */
async function locate(options: EvalModelOptions) {
  if (!options.runDir && !options.modelDir)
    throw new UsageError('nothing to evaluate: pass --run DIR, or --model DIR --data DIR, or pipe a run pointer on stdin');
  const modelDir = resolve(options.modelDir ?? join(options.runDir!, MODEL_DIR));
  let outDir: string;
  if (options.runDir) outDir = resolve(options.runDir);
  else if (options.outDir) outDir = resolve(options.outDir);
  else if (await exists(join(dirname(modelDir), RUN_FILE))) outDir = dirname(modelDir);
  else
    throw new UsageError(
      `--model ${options.modelDir} is not inside a run directory (no run.json beside it); pass --out DIR for the evaluation files`,
    );
  if (options.runDir && !(await exists(join(outDir, RUN_FILE)))) {
    throw new InputError(
      `${join(outDir, RUN_FILE)} not found: ${options.runDir} is not a run directory (train --out writes one; or pass --model DIR --data DIR)`,
    );
  }
  const run = await readRunJsonChecked(outDir);
  const card = await readModelCard(modelDir);
  const runDataset = run?.dataset?.path;
  const dataDir = options.dataDir ?? (typeof runDataset === 'string' ? runDataset : undefined) ?? card.dataset?.path;
  if (!dataDir) throw new UsageError(`neither ${join(outDir, RUN_FILE)} nor ${join(modelDir, 'card.json')} names the dataset; pass --data DIR`);
  const runBest = run?.best?.trial;
  const bestTrial = typeof card.trial === 'string' ? card.trial : typeof runBest === 'string' ? runBest : null;
  return { modelDir, outDir, card, dataDir: resolve(dataDir), bestTrial };
}

function cardTta(value: unknown): Tta {
  return value === 'flip' ? 'flip' : 'none';
}

/**
 * Evaluate a model on the test split of its dataset (which train never saw) and write eval.json, predictions.csv,
 * plots/*.png and report.html into the run directory; attach test_loss/test_accuracy to the model card and the
 * run's results.csv. Deterministic: the same model and data give byte-identical eval.json.
 */
export async function runEvalModel(options: EvalModelOptions): Promise<EvalModelOutcome> {
  const log = options.log ?? silentLogger;
  const worstCount = options.worst ?? 16;
  if (!Number.isInteger(worstCount) || worstCount < 0) throw new UsageError(`expected --worst to be a non-negative integer, got ${options.worst}`);
  if (!Number.isInteger(options.batchSize) || options.batchSize < 1)
    throw new UsageError(`expected --batch-size to be a positive integer, got ${options.batchSize}`);
  const min = options.minAccuracy;
  if (min !== undefined && !(min >= 0 && min <= 1)) throw new UsageError(`expected --min-accuracy to be a number from 0 to 1, got ${min}`);

  const { modelDir, outDir, card, dataDir, bestTrial } = await locate(options);
  const dataset = await openDataset(dataDir);
  const { manifest } = dataset;
  if (dataset.manifestSha256 !== card.dataset?.manifest_sha256) {
    const message = `${join(dataDir, MANIFEST_FILE)} is not the dataset ${join(modelDir, 'card.json')} was trained on (manifest sha256 ${dataset.manifestSha256.slice(0, 12)}, card ${String(card.dataset?.manifest_sha256).slice(0, 12)})`;
    if (!options.dataDir) throw new InputError(`${message}: it was rebuilt since training; retrain, or pass --data DIR to evaluate on it anyway`);
    log.warn(`${message}: its test split may hold images the model was trained on`);
  }
  if (JSON.stringify(manifest.classes) !== JSON.stringify(card.labels)) {
    throw new InputError(
      `${join(dataDir, MANIFEST_FILE)}: classes ${JSON.stringify(manifest.classes)} differ from the model's labels ${JSON.stringify(card.labels)} (same names in the same order needed)`,
    );
  }
  if (manifest.image_size !== card.input.size) {
    throw new InputError(
      `${join(dataDir, MANIFEST_FILE)}: images are ${manifest.image_size}px, the model takes ${card.input.size}px; rebuild the dataset with prep-data --img-dimensions ${card.input.size}`,
    );
  }
  const tta = options.tta ?? cardTta(card.tta);
  const count = manifest.splits.test.count;
  if (count === 0)
    throw new InputError(`${join(dataDir, MANIFEST_FILE)}: the test split is empty; rebuild the dataset with prep-data --test-pct > 0`);

  const labels = card.labels;
  const rows = await dataset.rows('test');
  const trueLabels = await dataset.labels('test');
  const model = await loadModel(modelDir, { device: options.device, log, ...(options.cacheDir ? { cacheDir: options.cacheDir } : {}) });
  let probs: Float32Array;
  try {
    log.info(`evaluating ${modelDir} on ${count} test images of ${dataDir}${tta === 'none' ? '' : ` (tta ${tta})`}`);
    probs = await predictSplit({
      model: withTta(model, tta),
      dataset,
      split: 'test',
      batchSize: options.batchSize,
      log,
      onProgress: options.onProgress,
    });
  } finally {
    await model.dispose();
  }

  const metrics = computeMetrics(probs, trueLabels, labels);
  const worst: WorstItem[] = worstMistakes(probs, trueLabels, labels.length, worstCount).map((m) => ({
    row: m.row,
    index: rows[m.row]!.index,
    source: rows[m.row]!.source,
    true: labels[m.true]!,
    predicted: labels[m.predicted]!,
    probability: Number(formatFloat32(m.probability)),
    true_probability: Number(formatFloat32(m.true_probability)),
  }));

  // Plots.
  const plots: Record<string, string> = {};
  const writePlot = async (key: keyof typeof PLOT_FILES, svg: string) => {
    await writeFileAtomic(join(outDir, PLOT_FILES[key]), await svgToPng(svg));
    plots[key] = PLOT_FILES[key];
  };
  await writePlot('confusion_matrix', confusionMatrixSvg(metrics.confusion_matrix, labels, `Confusion matrix (test split, ${count} images)`));
  const trials = await readTrials(outDir);
  if (trials.some((t) => t.history.length > 0)) {
    await writePlot('learning_curves', learningCurvesSvg(trials.map((t) => ({ label: trialLabel(t), best: t.id === bestTrial, epochs: t.history }))));
  }
  const size = manifest.image_size;
  const tiles = [];
  for (const item of worst) {
    tiles.push({
      png: await rgbToPng(await dataset.readPixels('test', item.row, 1), size, size),
      caption: [basename(item.source), `true: ${item.true}`, `pred: ${item.predicted} ${(item.probability * 100).toFixed(1)}%`],
    });
  }
  const wrong = count - metrics.confusion_matrix.reduce((sum, row, i) => sum + row[i]!, 0);
  if (worstCount > 0) await writePlot('worst_mistakes', contactSheetSvg(tiles, `Most confident mistakes (${worst.length} of ${wrong} wrong)`));
  // A plot not made this time (no trials, --worst 0) must not be left over from an earlier evaluation.
  for (const [key, file] of Object.entries(PLOT_FILES)) if (!plots[key]) await rm(join(outDir, file), { force: true });

  await writePredictions(join(outDir, PREDICTIONS_FILE), rows, probs, labels);
  const testSplit = manifest.splits.test;
  const result: EvalResult = {
    format: EVAL_FORMAT,
    split: 'test',
    count,
    labels,
    test_loss: metrics.test_loss,
    test_accuracy: metrics.test_accuracy,
    roc_auc: metrics.roc_auc,
    per_class: Object.fromEntries(metrics.per_class.map(({ label, ...rest }) => [label, rest])),
    confusion_matrix: metrics.confusion_matrix,
    worst,
    model: {
      path: relative(outDir, modelDir) || '.',
      sha256: await modelWeightsSha256(modelDir),
      trial: bestTrial,
      backbone: card.backbone.name,
      backbone_sha256: card.backbone.sha256,
      augment: typeof card.augment === 'string' ? card.augment : 'none',
    },
    dataset: {
      path: relative(outDir, dataDir) || '.',
      manifest_sha256: dataset.manifestSha256,
      test_pixels_sha256: testSplit.pixels.sha256,
      test_rows_sha256: testSplit.rows.sha256,
    },
    device: options.device,
    tta,
    gate: min === undefined ? null : { min_accuracy: min, passed: metrics.test_accuracy >= min },
    files: { predictions: PREDICTIONS_FILE, report: REPORT_FILE, plots },
  };
  await writeJsonAtomic(join(outDir, EVAL_FILE), result);
  await writeFileAtomic(join(outDir, REPORT_FILE), renderReport(result, trials, `Evaluation of ${basename(outDir)}`, await readStylesheet()));
  await attachCardMetrics(modelDir, { test_loss: metrics.test_loss, test_accuracy: metrics.test_accuracy }, { tta });
  await updateResults(outDir, bestTrial, metrics, log, tta);

  const summary = `test_accuracy ${metrics.test_accuracy.toFixed(4)} test_loss ${metrics.test_loss.toFixed(4)}${metrics.roc_auc === null ? '' : ` roc_auc ${metrics.roc_auc.toFixed(4)}`} on ${count} images`;
  log.info(`${summary}; wrote ${join(outDir, EVAL_FILE)} and ${join(outDir, REPORT_FILE)}`);
  if (result.gate && !result.gate.passed) {
    throw new FailureError(
      `quality gate failed: test accuracy ${metrics.test_accuracy.toFixed(4)} is below --min-accuracy ${min} (${count} test images; see ${join(outDir, EVAL_FILE)})`,
    );
  }
  return {
    result,
    outDir,
    modelDir,
    pointer: { kind: 'run', path: outDir, best: modelDir, test_accuracy: metrics.test_accuracy, test_loss: metrics.test_loss },
  };
}
