import assert from 'node:assert/strict';
import { readdir, readFile } from 'node:fs/promises';
import { PassThrough } from 'node:stream';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { createLogger, openDataset, readModelCard, UsageError } from '@imgpipe/kit';
import { cpuThreads, loadModel, fileLoadHandler, fileSaveHandler, Head, loadBackbone, loadTf, type Tf } from '@imgpipe/engines';
import { buildTinyConvBackbone, makeTempDir, type TempDir, type TinyBackbone } from '@imgpipe/test-utils';
import { checkFineTunable, fineTune, type FineTuneMode } from './fine-tune.js';
import { evaluateSplit } from './fine-tune-data.js';
import { buildFineTuneModel, disposeFineTuneModel, predictProbabilities } from './fine-tune-model.js';
import { TEST_SIZE, writeLearnableDataset } from '@imgpipe/test-utils';
import { runTrain } from '../train.js';

let temp: TempDir;
let dataDir: string;
let tiny: TinyBackbone;
let tf: Tf;

before(async () => {
  temp = await makeTempDir('imgpipe-fine-tune-');
  dataDir = await writeLearnableDataset(join(temp.path, 'data'), { train: 48, val: 24, test: 4 });
  tiny = await buildTinyConvBackbone({ dir: join(temp.path, 'tiny'), inputSize: TEST_SIZE, format: 'tfjs-layers', seed: 1 });
  ({ tf } = await loadTf('wasm'));
  // test-utils sets tf's IS_TEST flag (to mute a banner) while building models; that flag also turns on tfjs's
  // per-kernel data-id check, which misreads the tensors fusedMatMul's custom gradient saves for backprop as a leak.
  // Leaks are checked here with tf.memory().numTensors instead.
  tf.env().set('IS_TEST', false);
});
after(() => temp.remove());

/** Each layer's weights of a saved layers model, by layer name. */
async function weightsByLayer(modelJson: string): Promise<Map<string, number[][]>> {
  const model = await tf.loadLayersModel(fileLoadHandler(tf.io, modelJson));
  const out = new Map(model.layers.map((l) => [l.name, l.getWeights().map((w) => [...w.dataSync()])]));
  model.dispose();
  return out;
}

/** Accuracy of a model directory on the val split, through loadModel (the way eval-model and serve use it). */
async function reloadedValAccuracy(modelDir: string): Promise<number> {
  const dataset = await openDataset(dataDir);
  const count = dataset.manifest.splits.val.count;
  const labels = await dataset.labels('val');
  const model = await loadModel(modelDir, { device: 'wasm', workers: 1 });
  const probs = await model.predict(await dataset.readPixels('val', 0, count), count);
  await model.dispose();
  let correct = 0;
  for (let i = 0; i < count; i++) if ((probs[2 * i + 1]! > probs[2 * i]! ? 1 : 0) === labels[i]) correct++;
  return correct / count;
}

test('train --fine-tune all: run.json and the card record both results; the kept model reloads with its val accuracy', async () => {
  const tensors = tf.memory().numTensors;
  const result = await runTrain({
    dataDir,
    out: join(temp.path, 'runs'),
    backbone: tiny.path,
    featureLayer: 'features',
    preprocess: 'torch',
    cacheDir: join(temp.path, 'cache'),
    space: { lr: [0.01], layer_size: [16], dropout: [0], batch_size: [8], epochs: [2] },
    strategy: 'grid',
    runs: 0,
    seed: 42,
    device: 'cpu',
    extractBatchSize: 16,
    fineTune: { mode: 'all', epochs: 2 },
  });
  assert.equal(tf.memory().numTensors, tensors, 'no tensors left after sweep and fine-tuning');
  assert.deepEqual(
    (await readdir(result.runDir)).sort(),
    ['model', 'results.csv', 'run.json', 'trials.csv', 'trials.jsonl'],
    'no temporary directories left',
  );
  const run = JSON.parse(await readFile(join(result.runDir, 'run.json'), 'utf8'));
  const record = run.fine_tune;
  assert.equal(run.backbone.engine, 'onnxruntime', "the sweep's features were extracted by the converted ONNX graph");
  assert.equal(run.backbone.converted_from, 'tfjs-layers');
  assert.equal(record.mode, 'all');
  assert.equal(record.lr, 0.001, 'default lr: best lr / 10');
  assert.equal(record.workers, Math.min(cpuThreads(), 8), 'wasm: one worker per CPU thread, at most the batch size');
  assert.equal(record.history.length, 2);
  assert.ok(record.trained_parameters > 8 * 16, 'backbone weights are trained too');
  assert.equal(record.before.val_accuracy, result.best.val_accuracy);
  assert.equal(record.after.val_accuracy, record.history[record.best_epoch - 1].val_accuracy);
  assert.equal(record.kept, record.after.val_accuracy >= record.before.val_accuracy ? 'fine-tuned' : 'sweep');
  assert.ok(run.timings.fine_tune_seconds > 0);

  const card = await readModelCard(result.modelDir);
  assert.deepEqual(card.fine_tune, record);
  // Deterministic here (no dropout, seeded order): fine-tuning raises val accuracy (0.958 -> 1), so it is kept.
  assert.equal(record.kept, 'fine-tuned');
  assert.equal(card.metrics.val_accuracy, record.after.val_accuracy);
  // The saved backbone is the fine-tuned TF.js model converted to ONNX, so eval-model and serve run it on ONNX Runtime.
  assert.equal(card.backbone.engine, 'onnxruntime');
  assert.equal(card.backbone.converted_from, 'tfjs-layers');
  assert.equal(card.backbone.source_sha256, record.backbone_sha256, 'converted from the fine-tuned model');
  assert.notEqual(record.backbone_sha256, run.backbone.source_sha256, 'which is not the original');
  assert.deepEqual(await readdir(join(result.modelDir, 'backbone')), ['model.onnx']);
  assert.equal(await reloadedValAccuracy(result.modelDir), card.metrics.val_accuracy, 'the reloaded model gives the logged val accuracy');
  // model.onnx holds the fine-tuned backbone (converted from its TF.js files) and gives what the two parts give.
  assert.equal(card.onnx?.path, 'model.onnx');
  const dataset = await openDataset(dataDir);
  const count = dataset.manifest.splits.val.count;
  const pixels = await dataset.readPixels('val', 0, count);
  const predict = async (wholeModel: boolean) => {
    const model = await loadModel(result.modelDir, { device: 'wasm', workers: 1, wholeModel });
    return model.predict(pixels, count).finally(() => model.dispose());
  };
  const [whole, parts] = [await predict(true), await predict(false)];
  for (let i = 0; i < whole.length; i++) assert.ok(Math.abs(whole[i]! - parts[i]!) <= 1e-5, `probability ${i}: ${whole[i]} vs ${parts[i]}`);
});

test('fineTune changes the backbone weights (all) or only BatchNormalization ones (bn), and leaks no tensors', async () => {
  // A tiny backbone with BatchNormalization: conv -> bn -> relu -> global pool ('features').
  const bnDir = join(temp.path, 'bn-backbone');
  const input = tf.input({ shape: [TEST_SIZE, TEST_SIZE, 3] });
  const conv = tf.layers.conv2d({
    name: 'conv',
    filters: 6,
    kernelSize: 3,
    strides: 2,
    kernelInitializer: tf.initializers.glorotUniform({ seed: 1 }),
  });
  const bn = tf.layers.batchNormalization({ name: 'bn' });
  const pool = tf.layers.globalAveragePooling2d({ name: 'features' });
  const relu = tf.layers.activation({ activation: 'relu' });
  const net = tf.model({ inputs: input, outputs: pool.apply(relu.apply(bn.apply(conv.apply(input)))) as ReturnType<Tf['input']> });
  await net.save(fileSaveHandler(bnDir));
  net.dispose();

  const dataset = await openDataset(dataDir);
  for (const [mode, path] of [
    ['all', tiny.path],
    ['bn', join(bnDir, 'model.json')],
  ] as const) {
    const backbone = await loadBackbone(path, { device: 'wasm', featureLayer: 'features', preprocess: 'torch', workers: 1 });
    await checkFineTunable(backbone.info, backbone.files[0]!, mode);
    const head = new Head(tf, { inputDim: backbone.info.feature_dim, classes: 2, layer_size: 8, dropout: 0.5, lr: 0.01, batch_size: 8, seed: 1 });
    const headModel = head.toLayersModel();
    const headDir = join(temp.path, `head-${mode}`);
    await headModel.save(fileSaveHandler(headDir));
    headModel.dispose();
    head.dispose();
    await backbone.dispose();
    const tensors = tf.memory().numTensors;
    const outDir = join(temp.path, `tuned-${mode}`);
    const lines: string[] = [];
    const stream = new PassThrough();
    stream.on('data', (chunk: Buffer) => lines.push(String(chunk)));
    const tuned = await fineTune({
      log: createLogger({ name: 'train', stream }),
      tf,
      dataset,
      backboneModelJson: path,
      backboneInfo: backbone.info,
      headModelJson: join(headDir, 'model.json'),
      mode,
      epochs: 1,
      lr: 0.01,
      batchSize: 8,
      seed: 3,
      outDir,
    });
    assert.equal(tf.memory().numTensors, tensors, `${mode}: no tensors left`);
    assert.equal(tf.getBackend(), 'wasm');
    assert.ok(
      lines.some((l) => l.includes('fine-tuning')),
      'it logs what it trains',
    );
    // Conv2D's filter gradient comes from engines' wasm kernel: no fallback to the JavaScript cpu backend.
    assert.ok(!lines.some((l) => l.includes('cpu backend')), lines.join(''));
    assert.equal(tuned.history.length, 1);
    assert.ok(Number.isFinite(tuned.val_loss) && tuned.val_accuracy >= 0 && tuned.val_accuracy <= 1);
    assert.notEqual(tuned.backboneSha256, backbone.info.sha256);
    const before = await weightsByLayer(path);
    const after = await weightsByLayer(tuned.backboneFiles[0]!);
    if (mode === 'all') {
      assert.notDeepEqual(after.get('conv1'), before.get('conv1'), 'conv1 trained');
      assert.notDeepEqual(after.get('conv2'), before.get('conv2'), 'conv2 trained');
      assert.deepEqual(after.get('logits'), before.get('logits'), 'a layer past the feature layer is untouched');
    } else {
      assert.deepEqual(after.get('conv'), before.get('conv'), 'bn: the conv is frozen');
      const [gammaBefore, betaBefore] = before.get('bn')!;
      const [gammaAfter, betaAfter] = after.get('bn')!;
      assert.notDeepEqual(gammaAfter, gammaBefore, 'bn: gamma trained');
      assert.notDeepEqual(betaAfter, betaBefore, 'bn: beta trained');
      // Saved as loaded: every layer trainable again.
      const json = JSON.parse(await readFile(tuned.backboneFiles[0]!, 'utf8'));
      assert.ok(!JSON.stringify(json.modelTopology).includes('"trainable":false'));
    }
    // The head was trained too.
    assert.notDeepEqual((await weightsByLayer(tuned.headModelJson)).get('hidden'), (await weightsByLayer(join(headDir, 'model.json'))).get('hidden'));
  }
  // bn on a backbone without BatchNormalization is a usage error naming the alternative.
  const plain = await loadBackbone(tiny.path, { device: 'wasm', featureLayer: 'features', preprocess: 'torch', workers: 1 });
  await assert.rejects(
    checkFineTunable(plain.info, plain.files[0]!, 'bn'),
    (e: Error) => e instanceof UsageError && /--fine-tune all/.test(e.message),
  );
  await plain.dispose();
});

/** conv -> bn -> relu -> conv2 -> bn2 -> relu -> global pool ('features'), saved as a TF.js layers model.json. */
async function saveTwoBlockBackbone(dir: string): Promise<string> {
  const input = tf.input({ shape: [TEST_SIZE, TEST_SIZE, 3] });
  let t = tf.layers
    .conv2d({ name: 'conv', filters: 6, kernelSize: 3, strides: 2, kernelInitializer: tf.initializers.glorotUniform({ seed: 1 }) })
    .apply(input);
  t = tf.layers.activation({ activation: 'relu' }).apply(tf.layers.batchNormalization({ name: 'bn' }).apply(t));
  t = tf.layers
    .conv2d({ name: 'conv2', filters: 8, kernelSize: 3, strides: 2, kernelInitializer: tf.initializers.glorotUniform({ seed: 2 }) })
    .apply(t);
  t = tf.layers.activation({ activation: 'relu' }).apply(tf.layers.batchNormalization({ name: 'bn2' }).apply(t));
  const net = tf.model({ inputs: input, outputs: tf.layers.globalAveragePooling2d({ name: 'features' }).apply(t) as ReturnType<Tf['input']> });
  await net.save(fileSaveHandler(dir));
  net.dispose();
  return join(dir, 'model.json');
}

test('--fine-tune modes train exactly their layers; BatchNormalization statistics stay byte-identical unless update is asked', async () => {
  const path = await saveTwoBlockBackbone(join(temp.path, 'two-blocks'));
  const dataset = await openDataset(dataDir);
  const backbone = await loadBackbone(path, { device: 'wasm', featureLayer: 'features', preprocess: 'torch', workers: 1 });
  await backbone.dispose();
  const head = new Head(tf, { inputDim: backbone.info.feature_dim, classes: 2, layer_size: 8, dropout: 0, lr: 0.01, batch_size: 8, seed: 1 });
  const headModel = head.toLayersModel();
  const headDir = join(temp.path, 'two-blocks-head');
  await headModel.save(fileSaveHandler(headDir));
  headModel.dispose();
  head.dispose();
  const before = await weightsByLayer(path);
  const run = async (mode: FineTuneMode, extra: { bnStatistics?: 'update'; workers?: number } = {}) => {
    const outDir = join(temp.path, `two-blocks-${mode.replace(':', '-')}-${extra.bnStatistics ?? 'frozen'}-${extra.workers ?? 'n'}`);
    const tuned = await fineTune({
      tf,
      dataset,
      backboneModelJson: path,
      backboneInfo: backbone.info,
      headModelJson: join(headDir, 'model.json'),
      mode,
      epochs: 1,
      lr: 0.01,
      batchSize: 8,
      seed: 3,
      outDir,
      ...extra,
    });
    return { tuned, after: await weightsByLayer(tuned.backboneFiles[0]!) };
  };
  // [gamma, beta, moving mean, moving variance] of a BatchNormalization layer; [kernel, bias] of a conv.
  const changed = (after: Map<string, number[][]>, layer: string, index: number) =>
    JSON.stringify(after.get(layer)![index]) !== JSON.stringify(before.get(layer)![index]);

  for (const workers of [1, 2]) {
    const { tuned, after } = await run('bn', { workers });
    assert.equal(tuned.bn_statistics, 'frozen');
    for (const layer of ['bn', 'bn2']) {
      assert.ok(changed(after, layer, 0) && changed(after, layer, 1), `bn (${workers} workers): ${layer} gamma and beta trained`);
      assert.deepEqual(after.get(layer)!.slice(2), before.get(layer)!.slice(2), `bn (${workers} workers): ${layer} moving statistics byte-identical`);
    }
    assert.deepEqual(after.get('conv'), before.get('conv'));
    assert.deepEqual(after.get('conv2'), before.get('conv2'));
  }

  const last = await run('last:2');
  assert.ok(changed(last.after, 'conv2', 0) && changed(last.after, 'conv2', 1), 'last:2: conv2 kernel and bias trained');
  assert.ok(changed(last.after, 'bn2', 0) && changed(last.after, 'bn2', 1), 'last:2: bn2 gamma and beta trained');
  assert.deepEqual(last.after.get('bn2')!.slice(2), before.get('bn2')!.slice(2), 'last:2: bn2 moving statistics byte-identical');
  assert.deepEqual(last.after.get('conv'), before.get('conv'), 'last:2: conv byte-identical');
  assert.deepEqual(last.after.get('bn'), before.get('bn'), 'last:2: bn byte-identical');
  const json = JSON.parse(await readFile(last.tuned.backboneFiles[0]!, 'utf8'));
  assert.ok(!JSON.stringify(json.modelTopology).includes('"trainable":false'), 'saved as loaded: every layer trainable');

  const all = await run('all');
  for (const layer of ['conv', 'conv2']) assert.ok(changed(all.after, layer, 0), `all: ${layer} trained`);
  for (const layer of ['bn', 'bn2'])
    assert.deepEqual(all.after.get(layer)!.slice(2), before.get(layer)!.slice(2), `all: ${layer} moving statistics byte-identical`);

  const updated = await run('all', { bnStatistics: 'update' });
  assert.equal(updated.tuned.bn_statistics, 'update');
  for (const layer of ['bn', 'bn2'])
    assert.ok(changed(updated.after, layer, 2) && changed(updated.after, layer, 3), `update: ${layer} moving statistics follow the batches`);

  await assert.rejects(checkFineTunable(backbone.info, path, 'last:0'), (e: Error) => e instanceof UsageError && /last:N/.test(e.message));
});

test('fine-tuning saves its best epoch, not its last, and --fine-tune-patience stops it early', async () => {
  const dataset = await openDataset(dataDir);
  const backbone = await loadBackbone(tiny.path, { device: 'wasm', featureLayer: 'features', preprocess: 'torch', workers: 1 });
  await backbone.dispose();
  const head = new Head(tf, { inputDim: backbone.info.feature_dim, classes: 2, layer_size: 8, dropout: 0, lr: 0.01, batch_size: 8, seed: 1 });
  const headModel = head.toLayersModel();
  const headDir = join(temp.path, 'best-head');
  await headModel.save(fileSaveHandler(headDir));
  headModel.dispose();
  head.dispose();
  const common = {
    tf,
    dataset,
    backboneModelJson: tiny.path,
    backboneInfo: backbone.info,
    headModelJson: join(headDir, 'model.json'),
    mode: 'all' as const,
    lr: 1,
    batchSize: 8,
    seed: 3,
  };
  // A learning rate this high overshoots after the second epoch (val accuracy 0.917, 1, 0.708, 0.833, 0.833).
  const tuned = await fineTune({ ...common, epochs: 5, outDir: join(temp.path, 'best-epoch') });
  const losses = tuned.history.map((h) => `${h.val_accuracy.toFixed(3)}/${h.val_loss.toFixed(4)}`).join(' ');
  assert.equal(tuned.epochs_run, 5);
  assert.ok(tuned.best_epoch < tuned.epochs_run, `an earlier epoch is the best: ${losses}`);
  const best = tuned.history[tuned.best_epoch - 1]!;
  for (const h of tuned.history)
    assert.ok(
      h.val_accuracy < best.val_accuracy || (h.val_accuracy === best.val_accuracy && h.val_loss >= best.val_loss),
      `epoch ${h.epoch} is not better: ${losses}`,
    );
  assert.equal(tuned.val_accuracy, best.val_accuracy);
  assert.equal(tuned.val_loss, best.val_loss);
  // The saved files give the best epoch's val loss, not the last one's.
  const saved = await buildFineTuneModel(tf, tuned.backboneFiles[0]!, tuned.headModelJson, 'features', 'all');
  const size = backbone.info.input_size;
  const val = await evaluateSplit(dataset, 'val', 8, 2, (pixels, n) =>
    predictProbabilities(tf, saved.model, pixels, n, size, backbone.info.preprocess),
  );
  disposeFineTuneModel(saved);
  assert.ok(Math.abs(val.loss - best.val_loss) < 1e-6, `saved model's val loss ${val.loss} vs best epoch's ${best.val_loss} (${losses})`);
  assert.ok(Math.abs(val.loss - tuned.history.at(-1)!.val_loss) > 1e-4, "and not the last epoch's");

  // Patience 1: it stops at the first epoch that is not better, with the same epochs up to there.
  const patient = await fineTune({ ...common, epochs: 5, patience: 1, outDir: join(temp.path, 'best-epoch-patience') });
  const firstWorse = tuned.history.findIndex(
    (h, i) =>
      i > 0 &&
      !tuned.history.slice(0, i).every((e) => h.val_accuracy > e.val_accuracy || (h.val_accuracy === e.val_accuracy && h.val_loss < e.val_loss)),
  );
  assert.equal(patient.epochs_run, firstWorse + 1, losses);
  assert.deepEqual(
    patient.history.map(({ seconds: _, ...e }) => e),
    tuned.history.slice(0, firstWorse + 1).map(({ seconds: _, ...e }) => e),
  );
});
