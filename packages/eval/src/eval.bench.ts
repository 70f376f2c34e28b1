// eval-model costs besides the model itself: the metrics on many rows, rendering the three plots (16 worst-mistake
// tiles of --size px), and a whole runEvalModel of --count test images through a tiny ONNX conv backbone (so the
// figure is eval-model's own overhead: reading pixels, predict calls, files; a ResNet50's cost is the engines').
// Then a MobileNet v1 (0.75, 224, random weights) TF.js layers backbone kept on TF.js wasm with --workers workers
// (--device wasm: not converted to ONNX): predictSplit images/s with one batch in flight (the path before
// issue 17) and with model.concurrency batches in flight, and with --tta flip (each image and its mirror); and the
// same model as model.onnx on one ONNX Runtime session. The tiny end-to-end run is timed with and without model.onnx.
// Usage: IMGPIPE_BENCH_FILTER=eval node scripts/run-bench.mjs [--count 2000] [--size 224] [--rows 200000]
//          [--mobilenet-images 64] [--workers 2] [--batch 16]
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Head, loadBackbone, loadModel, loadTf, saveModelDir, withTta } from '@imgpipe/engines';
import { MODEL_FORMAT, openDataset, silentLogger, type ModelCard } from '@imgpipe/kit';
import { writeBenchResults, type BenchResult, buildTinyConvBackbone, makeTempDir, writeSyntheticDataset } from '@imgpipe/test-utils';
import { buildMobileNetV1 } from '@imgpipe/engines/test-mobilenet-model';
import { runEvalModel } from './eval-model.js';
import { predictSplit } from './predict-split.js';
import { computeMetrics, worstMistakes } from './metrics.js';
import { contactSheetSvg } from './plot-contact-sheet.js';
import { confusionMatrixSvg } from './plot-confusion.js';
import { learningCurvesSvg } from './plot-curves.js';
import { rgbToPng, svgToPng } from './render.js';

const { values } = parseArgs({
  options: {
    count: { type: 'string', default: '2000' },
    size: { type: 'string', default: '224' },
    rows: { type: 'string', default: '200000' },
    'mobilenet-images': { type: 'string', default: '64' },
    workers: { type: 'string', default: '2' },
    batch: { type: 'string', default: '16' },
  },
});
const count = Number(values.count);
const size = Number(values.size);
const rowsN = Number(values.rows);
const results: BenchResult[] = [];
const seconds = (started: number) => (performance.now() - started) / 1000;

// Metrics on random probabilities.
const probs = new Float32Array(rowsN * 2);
const labels = new Int32Array(rowsN);
for (let i = 0; i < rowsN; i++) {
  const p = Math.random();
  probs[i * 2] = p;
  probs[i * 2 + 1] = 1 - p;
  labels[i] = Math.random() < 0.5 ? 0 : 1;
}
let started = performance.now();
computeMetrics(probs, labels, ['cat', 'dog']);
worstMistakes(probs, labels, 2, 16);
results.push({
  name: 'metrics (loss, accuracy, confusion, per-class, ROC AUC, worst 16)',
  unit: 'rows/s',
  value: rowsN / seconds(started),
  params: { rows: rowsN, classes: 2 },
});

// Plots.
const tilePixels = new Uint8Array(size * size * 3).map(() => Math.floor(Math.random() * 256));
started = performance.now();
const tiles = await Promise.all(
  Array.from({ length: 16 }, async () => ({
    png: await rgbToPng(tilePixels, size, size),
    caption: ['cat.1234.jpg', 'true: cat', 'pred: dog 97.1%'],
  })),
);
await svgToPng(contactSheetSvg(tiles, 'Most confident mistakes'));
await svgToPng(
  confusionMatrixSvg(
    [
      [900, 100],
      [50, 950],
    ],
    ['cat', 'dog'],
  ),
);
const history = (k: number) =>
  Array.from({ length: 10 }, (_, e) => ({
    epoch: e + 1,
    train_loss: 1 / (e + 1 + k),
    val_loss: 1.1 / (e + 1 + k),
    train_accuracy: 0.5 + e / 25,
    val_accuracy: 0.5 + e / 30,
  }));
await svgToPng(learningCurvesSvg(Array.from({ length: 9 }, (_, k) => ({ label: `t00${k + 1}`, best: k === 4, epochs: history(k) }))));
results.push({ name: 'render the three plots (16 tiles, 9 trials x 10 epochs)', unit: 's', value: seconds(started), params: { tile_size: size } });

// A whole evaluation with a tiny backbone.
const temp = await makeTempDir('imgpipe-eval-bench-');
try {
  const dataDir = await writeSyntheticDataset({ dir: join(temp.path, 'data'), size, counts: { train: 0, val: 0, test: count } });
  const dataset = await openDataset(dataDir);
  const tiny = await buildTinyConvBackbone({ dir: join(temp.path, 'backbone'), inputSize: size, format: 'onnx' });
  const backbone = await loadBackbone(tiny.path, { device: 'cpu', featureLayer: tiny.featureLayer, preprocess: 'torch', inputSize: size });
  const { tf } = await loadTf('wasm');
  const params = { layer_size: 16, dropout: 0, lr: 0.01, batch_size: 32, epochs: 1 };
  const head = new Head(tf, { ...params, inputDim: tiny.featureDim, classes: 2, seed: 1 });
  const card: ModelCard = {
    format: MODEL_FORMAT,
    labels: ['cat', 'dog'],
    input: { size, channels: 3, fit: 'fill' },
    preprocess: backbone.info.preprocess,
    backbone: { ...backbone.info, path: '' },
    head: { path: 'head/model.json', ...params },
    metrics: {},
    dataset: { manifest_sha256: dataset.manifestSha256, path: dataDir },
    created: new Date().toISOString(),
    versions: {},
  };
  const layers = head.toLayersModel();
  // The same model twice: with model.onnx (what train writes, run by one ONNX Runtime session) and without it
  // (the ONNX backbone, then the TF.js head on wasm, as before model.onnx).
  const modelDirs = { 'model.onnx': join(temp.path, 'model'), 'two parts': join(temp.path, 'model-parts') };
  await saveModelDir(modelDirs['model.onnx'], { card, backboneFiles: backbone.files, head: layers });
  await saveModelDir(modelDirs['two parts'], { card, backboneFiles: backbone.files, head: layers, wholeModel: false });
  head.dispose();
  await backbone.dispose();
  for (const round of [1, 2]) {
    for (const [kind, modelDir] of Object.entries(modelDirs)) {
      started = performance.now();
      await runEvalModel({ modelDir, dataDir, outDir: join(temp.path, `eval-${round}-${kind.replace(' ', '-')}`), device: 'wasm', batchSize: 32 });
      results.push({
        name: `runEvalModel end to end, tiny ONNX backbone, ${kind} (round ${round})`,
        unit: 'images/s',
        value: count / seconds(started),
        params: { count, size, model: kind, device: kind === 'model.onnx' ? 'cpu (onnx, wasm asked)' : 'wasm (head) / cpu (onnx)' },
      });
    }
  }
  await mobilenetOnWasm(temp.path);
} finally {
  await temp.remove();
}
await writeBenchResults('eval', results);

/** predictSplit on a TF.js MobileNet kept on wasm: one batch in flight vs model.concurrency, and --tta flip. */
async function mobilenetOnWasm(dir: string): Promise<void> {
  const images = Number(values['mobilenet-images']);
  if (images === 0) return;
  const workers = Number(values.workers);
  const batch = Number(values.batch);
  const SIZE = 224;
  const mobilenet = await buildMobileNetV1({ dir: join(dir, 'mobilenet'), layout: 'keras', alpha: 0.75, inputSize: SIZE });
  const dataDir = await writeSyntheticDataset({ dir: join(dir, 'mobilenet-data'), size: SIZE, counts: { train: 0, val: 0, test: images } });
  const dataset = await openDataset(dataDir);
  const backbone = await loadBackbone(mobilenet.path, {
    device: 'wasm',
    workers: 1,
    featureLayer: mobilenet.featureLayer,
    preprocess: 'tf',
    inputSize: SIZE,
  });
  const { tf } = await loadTf('wasm');
  const params = { layer_size: 16, dropout: 0, lr: 0.01, batch_size: 32, epochs: 1 };
  const head = new Head(tf, { ...params, inputDim: backbone.info.feature_dim, classes: 2, seed: 1 });
  const modelDir = join(dir, 'mobilenet-model');
  await saveModelDir(modelDir, {
    card: {
      format: MODEL_FORMAT,
      labels: ['cat', 'dog'],
      input: { size: SIZE, channels: 3, fit: 'fill' },
      preprocess: backbone.info.preprocess,
      backbone: { ...backbone.info, path: '' },
      head: { path: 'head/model.json', ...params },
      metrics: {},
      dataset: { manifest_sha256: dataset.manifestSha256, path: dataDir },
      created: new Date().toISOString(),
      versions: {},
    },
    backboneFiles: backbone.files,
    head: head.toLayersModel(),
  });
  head.dispose();
  await backbone.dispose();
  const model = await loadModel(modelDir, { device: 'wasm', workers, wholeModel: false });
  const whole = await loadModel(modelDir, { device: 'wasm' });
  try {
    const common = { model: 'MobileNet v1 0.75 224 (random weights), TF.js layers on wasm', workers, batch, images };
    await predictSplit({ model, dataset, split: 'test', batchSize: batch, log: silentLogger }); // warm-up: wasm compiles kernels
    const cases = [
      { name: 'eval predictSplit, 1 batch in flight (before)', model: { ...model, concurrency: 1 }, tta: 'none' },
      { name: `eval predictSplit, ${model.concurrency} batches in flight (after)`, model, tta: 'none' },
      { name: `eval predictSplit --tta flip, ${model.concurrency} batches in flight`, model: withTta(model, 'flip'), tta: 'flip' },
      { name: 'eval predictSplit, model.onnx on ONNX Runtime (CPU)', model: whole, tta: 'none' },
    ];
    await predictSplit({ model: whole, dataset, split: 'test', batchSize: batch, log: silentLogger }); // warm-up
    for (const c of cases) {
      const started = performance.now();
      await predictSplit({ model: c.model, dataset, split: 'test', batchSize: batch, log: silentLogger });
      results.push({
        name: c.name,
        unit: 'images/s',
        value: images / seconds(started),
        params: { ...common, concurrency: c.model.concurrency, tta: c.tta },
      });
    }
  } finally {
    await model.dispose();
    await whole.dispose();
  }
}
