// eval-model on a real trained run: generated images -> prep-data -> train (tiny ONNX conv backbone) -> eval-model.
import assert from 'node:assert/strict';
import { cp, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { after, before, test } from 'node:test';
import { FailureError, InputError, openDataset, readCsvRows, readModelCard, runCli, type CsvRow } from '@imgpipe/kit';
import { loadModel, loadTf } from '@imgpipe/engines';
import { evalModelCli, runEvalModel, type EvalResult } from '@imgpipe/eval';
import { runPrepData } from '@imgpipe/prep-data';
import { buildTinyConvBackbone, generateImageSet, makeTempDir, TINY_IMAGE_SIZES, type TempDir } from '@imgpipe/test-utils';
import { runTrain } from '@imgpipe/train';
import { execa } from 'execa';
import { contactSheetSize } from '../packages/eval/src/plot-contact-sheet.js';
import { confusionPlotSize } from '../packages/eval/src/plot-confusion.js';
import { CURVES_SIZE } from '../packages/eval/src/plot-curves.js';
import { decodedSize } from '../packages/eval/src/render.js';

// The real bin (bin/eval-model.js -> dist/main.js): run `npx tsc -b` before the tests.
const BIN = fileURLToPath(new URL('../packages/eval/bin/eval-model.js', import.meta.url));
const SIZE = 16;

let temp: TempDir;
let dataDir: string;
let runDir: string;
let bestTrial: string;

before(async () => {
  temp = await makeTempDir('imgpipe-eval-');
  const set = await generateImageSet({ dir: join(temp.path, 'images'), count: 64, seed: 21, sizes: TINY_IMAGE_SIZES });
  dataDir = join(temp.path, 'prep');
  await runPrepData({
    csv: await readFile(set.csvPath),
    csvSource: set.csvPath,
    out: dataDir,
    size: SIZE,
    fractions: { train: 0.5, val: 0.25, test: 0.25 },
    seed: 42,
    quiet: true,
    concurrency: 2,
  });
  const tiny = await buildTinyConvBackbone({ dir: join(temp.path, 'backbone'), inputSize: SIZE, format: 'onnx', seed: 1 });
  const trained = await runTrain({
    dataDir,
    out: join(temp.path, 'runs'),
    backbone: tiny.path,
    featureLayer: tiny.featureLayer,
    preprocess: 'torch',
    cacheDir: join(temp.path, 'cache'),
    space: { lr: [0.01, 0.05], layer_size: [8], dropout: [0], batch_size: [16], epochs: [3] },
    strategy: 'grid',
    runs: 0,
    seed: 42,
    device: 'wasm',
    extractBatchSize: 32,
  });
  runDir = trained.runDir;
  bestTrial = trained.best.trial;
});
after(() => temp.remove());

const evaluate = (overrides: Partial<Parameters<typeof runEvalModel>[0]> = {}) =>
  runEvalModel({ runDir, device: 'wasm', batchSize: 7, ...overrides });
const readEval = async (dir = runDir) => JSON.parse(await readFile(join(dir, 'eval.json'), 'utf8')) as EvalResult;

async function csvRows(path: string): Promise<CsvRow[]> {
  return (await readCsvRows(Readable.from([await readFile(path)]), { source: path })).rows;
}

async function pngSize(path: string) {
  return decodedSize(await readFile(path));
}

test('metrics agree with an independent computation from predictions.csv and a fresh prediction of the test split', async () => {
  const outcome = await evaluate();
  const result = await readEval();
  assert.deepEqual(outcome.result, result);
  const dataset = await openDataset(dataDir);
  const count = dataset.manifest.splits.test.count;
  assert.ok(count >= 10, `test split of ${count}`);
  assert.equal(result.count, count);
  assert.deepEqual(result.labels, ['cat', 'dog']);

  // predictions.csv lists the test split in order.
  const rows = await csvRows(join(runDir, 'predictions.csv'));
  const testRows = await dataset.rows('test');
  assert.deepEqual(
    rows.map((r) => r.source),
    testRows.map((r) => r.source),
  );
  assert.deepEqual(
    rows.map((r) => Number(r.label)),
    testRows.map((r) => r.label),
  );

  // Its probabilities are what the saved model gives for the test pixels.
  const model = await loadModel(join(runDir, 'model'), { device: 'wasm' });
  const fresh = await model.predict(await dataset.readPixels('test', 0, count), count);
  await model.dispose();
  rows.forEach((r, i) => {
    assert.equal(Math.fround(Number(r.prob_cat)), fresh[i * 2]);
    assert.equal(Math.fround(Number(r.prob_dog)), fresh[i * 2 + 1]);
  });

  // Accuracy, loss, confusion matrix, per-class and AUC by hand from the CSV.
  const p = rows.map((r) => [Number(r.prob_cat), Number(r.prob_dog)] as const);
  const y = rows.map((r) => Number(r.label));
  const pred = p.map(([a, b]) => (b > a ? 1 : 0));
  const correct = pred.filter((v, i) => v === y[i]).length;
  assert.equal(result.test_accuracy, correct / count);
  const loss = -y.reduce((s, label, i) => s + Math.log(Math.max(1e-7, p[i]![label]!)), 0) / count;
  assert.ok(Math.abs(result.test_loss - loss) < 1e-6, `${result.test_loss} vs ${loss}`);
  const cm = [
    [0, 0],
    [0, 0],
  ];
  y.forEach((label, i) => {
    cm[label]![pred[i]!]!++;
  });
  assert.deepEqual(result.confusion_matrix, cm);
  assert.equal(
    cm.flat().reduce((a, b) => a + b, 0),
    count,
  );
  assert.deepEqual(
    rows.map((r) => Number(r.predicted)),
    pred,
  );
  for (const [c, name] of ['cat', 'dog'].entries()) {
    const tp = cm[c]![c]!;
    const support = cm[c]![0]! + cm[c]![1]!;
    const predicted = cm[0]![c]! + cm[1]![c]!;
    assert.equal(result.per_class[name]!.support, support);
    assert.equal(result.per_class[name]!.recall, support ? tp / support : 0);
    assert.equal(result.per_class[name]!.precision, predicted ? tp / predicted : 0);
  }
  let pairs = 0;
  let wins = 0;
  y.forEach((a, i) => {
    y.forEach((b, j) => {
      if (a !== 1 || b !== 0) return;
      pairs++;
      wins += p[i]![1] > p[j]![1] ? 1 : p[i]![1] === p[j]![1] ? 0.5 : 0;
    });
  });
  assert.ok(Math.abs(result.roc_auc! - wins / pairs) < 1e-12);

  // The worst list: wrong rows only, most confident first, as many as there are (up to 16).
  const wrong = count - correct;
  assert.equal(result.worst.length, Math.min(16, wrong));
  for (const w of result.worst) {
    assert.notEqual(w.true, w.predicted);
    assert.equal(w.source, testRows[w.row]!.source);
    assert.equal(w.probability, Math.max(...p[w.row]!));
  }
  assert.deepEqual(
    result.worst.map((w) => w.probability),
    result.worst.map((w) => w.probability).sort((a, b) => b - a),
  );

  // Hashes, card, results.csv, pointer.
  assert.equal(result.dataset.manifest_sha256, dataset.manifestSha256);
  assert.equal(result.model.trial, bestTrial);
  assert.match(result.model.sha256, /^[0-9a-f]{64}$/);
  const card = await readModelCard(join(runDir, 'model'));
  assert.equal(card.metrics.test_accuracy, result.test_accuracy);
  assert.equal(card.metrics.test_loss, result.test_loss);
  assert.ok(card.metrics.val_accuracy !== undefined, 'train metrics are kept');
  const results = await csvRows(join(runDir, 'results.csv'));
  const best = results.filter((r) => r.model === bestTrial);
  assert.equal(best.length, 1);
  assert.ok(Math.abs(Number(best[0]!.test_accuracy) - result.test_accuracy) < 1e-7);
  assert.ok(Math.abs(Number(best[0]!.test_loss) - result.test_loss) < 1e-6);
  assert.ok(results.filter((r) => r.model !== bestTrial).every((r) => r.test_accuracy === ''));
  assert.deepEqual(outcome.pointer, {
    kind: 'run',
    path: runDir,
    best: join(runDir, 'model'),
    test_accuracy: result.test_accuracy,
    test_loss: result.test_loss,
  });
});

test('plots decode as PNGs of the expected sizes and report.html ties them together', async () => {
  await evaluate({ worst: 3 });
  const result = await readEval();
  assert.equal(result.worst.length, Math.min(3, result.count - result.confusion_matrix[0]![0]! - result.confusion_matrix[1]![1]!));
  assert.deepEqual(Object.keys(result.files.plots).sort(), ['confusion_matrix', 'learning_curves', 'worst_mistakes']);
  assert.deepEqual(await pngSize(join(runDir, 'plots/confusion-matrix.png')), { ...pick(confusionPlotSize(2)), format: 'png' });
  assert.deepEqual(await pngSize(join(runDir, 'plots/learning-curves.png')), { ...CURVES_SIZE, format: 'png' });
  assert.deepEqual(await pngSize(join(runDir, 'plots/worst-mistakes.png')), { ...contactSheetSize(result.worst.length), format: 'png' });
  const html = await readFile(join(runDir, 'report.html'), 'utf8');
  for (const file of Object.values(result.files.plots)) assert.ok(html.includes(`src="${file}"`), file);
  assert.match(html, new RegExp(`${bestTrial} <strong>\\(best\\)</strong>`));
  assert.ok(html.includes('t001') && html.includes('t002'), 'every trial is in the table');
  assert.ok(html.includes(result.test_accuracy.toFixed(4)));
});

function pick({ width, height }: { width: number; height: number }) {
  return { width, height };
}

test('--worst 0 lists and draws no mistakes and removes an earlier contact sheet', async () => {
  await evaluate();
  await evaluate({ worst: 0 });
  const result = await readEval();
  assert.deepEqual(result.worst, []);
  assert.equal(result.files.plots.worst_mistakes, undefined);
  await assert.rejects(readFile(join(runDir, 'plots/worst-mistakes.png')), /ENOENT/);
  assert.match(await readFile(join(runDir, 'report.html'), 'utf8'), /\d+ mistakes, none listed \(--worst 0\)/);
});

test('evaluating twice gives identical eval.json and predictions.csv, and leaves no tensors behind', async () => {
  const { tf } = await loadTf('wasm');
  const tensors = tf.memory().numTensors;
  await evaluate();
  assert.equal(tf.memory().numTensors, tensors);
  const first = await readFile(join(runDir, 'eval.json'));
  const firstPredictions = await readFile(join(runDir, 'predictions.csv'));
  await evaluate({ batchSize: 32 });
  assert.ok(first.equals(await readFile(join(runDir, 'eval.json'))), 'eval.json differs');
  assert.ok(firstPredictions.equals(await readFile(join(runDir, 'predictions.csv'))), 'predictions.csv differs');
});

test('the quality gate fails below the threshold (exit 1, eval.json written, no pointer) and passes at or above it', async () => {
  const { test_accuracy: accuracy } = await readEval();
  assert.ok(accuracy < 0.99, `the tiny model should make mistakes, got accuracy ${accuracy}`);
  await assert.rejects(evaluate({ minAccuracy: Math.min(1, accuracy + 0.01) }), (error: unknown) => {
    assert.ok(error instanceof FailureError);
    assert.match(error.message, /quality gate failed: test accuracy [\d.]+ is below --min-accuracy/);
    return true;
  });
  assert.deepEqual((await readEval()).gate, { min_accuracy: Math.min(1, accuracy + 0.01), passed: false });

  const cli = async (args: string[]) => {
    const stdout = new PassThrough();
    const stderr = new PassThrough();
    let out = '';
    let err = '';
    stdout.on('data', (c) => (out += c));
    stderr.on('data', (c) => (err += c));
    const code = await runCli(evalModelCli, [...args, '--device', 'wasm', '-q'], {
      stdout,
      stderr,
      stdin: Readable.from([]),
      cwd: temp.path,
      env: {},
    });
    return { code, out, err };
  };
  const failed = await cli(['--run', runDir, '--min-accuracy', String(accuracy + 0.01)]);
  assert.equal(failed.code, 1);
  assert.equal(failed.out, '', 'no pointer for the next stage');
  assert.match(failed.err, /quality gate failed/);

  const passed = await cli(['--run', runDir, '--min-accuracy', String(accuracy)]);
  assert.equal(passed.code, 0, passed.err);
  const pointer = JSON.parse(passed.out);
  assert.equal(pointer.test_accuracy, accuracy);
  assert.deepEqual((await readEval()).gate, { min_accuracy: accuracy, passed: true });

  const bad = await cli(['--run', runDir, '--min-accuracy', 'high']);
  assert.equal(bad.code, 2);
  assert.match(bad.err, /expected --min-accuracy to be a number/);
});

test('--model with --data and --out evaluates a model outside its run; mismatched inputs are clear errors', async () => {
  const modelCopy = join(temp.path, 'lone-model');
  await cp(join(runDir, 'model'), modelCopy, { recursive: true });
  const out = join(temp.path, 'lone-eval');
  await assert.rejects(runEvalModel({ modelDir: modelCopy, dataDir, device: 'wasm', batchSize: 16 }), /not inside a run directory.*--out/);
  const outcome = await runEvalModel({ modelDir: modelCopy, dataDir, outDir: out, device: 'wasm', batchSize: 16 });
  const result = await readEval(out);
  assert.equal(result.test_accuracy, (await readEval()).test_accuracy);
  assert.deepEqual(Object.keys(result.files.plots).sort(), ['confusion_matrix', 'worst_mistakes'], 'no trials, no learning curves');
  assert.equal(outcome.pointer.path, out);
  assert.equal((await readModelCard(modelCopy)).metrics.test_accuracy, result.test_accuracy);

  await assert.rejects(
    runEvalModel({ runDir: dataDir, device: 'wasm', batchSize: 16 }),
    (error: unknown) => error instanceof InputError && /is not a run directory/.test(error.message),
  );
  // A dataset that is not the one the model was trained on: refused unless --data names it.
  const other = join(temp.path, 'other-prep');
  await cp(dataDir, other, { recursive: true });
  const manifest = JSON.parse(await readFile(join(other, 'manifest.json'), 'utf8'));
  manifest.split.seed = 99;
  await writeFile(join(other, 'manifest.json'), JSON.stringify(manifest));
  const card = JSON.parse(await readFile(join(modelCopy, 'card.json'), 'utf8'));
  card.dataset.path = other;
  await writeFile(join(modelCopy, 'card.json'), JSON.stringify(card));
  await assert.rejects(
    runEvalModel({ modelDir: modelCopy, outDir: out, device: 'wasm', batchSize: 16 }),
    /not the dataset .* was trained on.*pass --data/,
  );
  await rm(other, { recursive: true });
});

test('a same-size corrupted test.u8 is refused (exit 2) instead of evaluated', async () => {
  const corrupt = join(temp.path, 'corrupt-prep');
  await cp(dataDir, corrupt, { recursive: true });
  const pixels = await readFile(join(corrupt, 'test.u8'));
  for (let i = 0; i < pixels.length; i += 5) pixels[i] = 255 - pixels[i]!;
  await writeFile(join(corrupt, 'test.u8'), pixels);
  const modelCopy = join(temp.path, 'corrupt-model');
  await cp(join(runDir, 'model'), modelCopy, { recursive: true });
  await assert.rejects(
    runEvalModel({ modelDir: modelCopy, dataDir: corrupt, outDir: join(temp.path, 'corrupt-eval'), device: 'wasm', batchSize: 16 }),
    (error: unknown) => {
      assert.ok(error instanceof InputError, String(error));
      assert.match(error.message, /test\.u8: sha256 [0-9a-f]{64} does not match [0-9a-f]{64} in the dataset manifest/);
      return true;
    },
  );
  await rm(corrupt, { recursive: true });
});

test('e2e: the real bin reads the run pointer on stdin and prints the run pointer with test metrics', async () => {
  const input = `${JSON.stringify({ kind: 'run', path: runDir, best: join(runDir, 'model') })}\n`;
  const ok = await execa('node', [BIN, '--device', 'wasm', '--worst', '4'], { cwd: temp.path, input, reject: false });
  assert.equal(ok.exitCode, 0, ok.stderr);
  const lines = ok.stdout.trim().split('\n');
  assert.equal(lines.length, 1);
  const pointer = JSON.parse(lines[0]!);
  const result = await readEval();
  assert.deepEqual(pointer, {
    kind: 'run',
    path: runDir,
    best: join(runDir, 'model'),
    test_accuracy: result.test_accuracy,
    test_loss: result.test_loss,
  });
  assert.match(ok.stderr, /test_accuracy [\d.]+ test_loss [\d.]+/);

  const gate = await execa('node', [BIN, '--run', runDir, '--device', 'wasm', '--min-accuracy', '1.01'], { cwd: temp.path, reject: false });
  assert.equal(gate.exitCode, 2, gate.stderr);
  assert.match(gate.stderr, /expected --min-accuracy to be a number >= 0 and <= 1, got '1.01'/);
  const none = await execa('node', [BIN], { cwd: temp.path, input: '', reject: false });
  assert.equal(none.exitCode, 2);
  assert.match(none.stderr, /expected a JSON pointer line/);
});
