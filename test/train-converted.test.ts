// A TF.js layers backbone through train and eval-model on --device cpu: train runs it converted to ONNX on ONNX
// Runtime, saves the converted ONNX file as the model directory's backbone, and eval-model and loadModel load it.
import assert from 'node:assert/strict';
import { readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { loadModel } from '@imgpipe/engines';
import { openDataset, readModelCard, silentLogger } from '@imgpipe/kit';
import { runEvalModel, type EvalResult } from '@imgpipe/eval';
import { runPrepData } from '@imgpipe/prep-data';
import { buildTinyConvBackbone, generateImageSet, makeTempDir, TINY_IMAGE_SIZES, type TempDir } from '@imgpipe/test-utils';
import { runTrain } from '@imgpipe/train';

const SIZE = 16;
let temp: TempDir;

before(async () => {
  temp = await makeTempDir('imgpipe-train-converted-');
});
after(() => temp.remove());

test('train --device cpu with a TF.js layers backbone saves the converted ONNX backbone; eval-model and loadModel load it', async () => {
  const set = await generateImageSet({ dir: join(temp.path, 'images'), count: 48, seed: 5, sizes: TINY_IMAGE_SIZES });
  const dataDir = join(temp.path, 'prep');
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
  const tiny = await buildTinyConvBackbone({ dir: join(temp.path, 'backbone'), inputSize: SIZE, format: 'tfjs-layers', seed: 2 });
  const cacheDir = join(temp.path, 'cache');
  const trained = await runTrain({
    dataDir,
    out: join(temp.path, 'runs'),
    backbone: tiny.path,
    featureLayer: tiny.featureLayer,
    cacheDir,
    space: { lr: [0.05], layer_size: [8], dropout: [0], batch_size: [8], epochs: [3] },
    strategy: 'grid',
    runs: 0,
    seed: 42,
    device: 'cpu',
    extractBatchSize: 16,
    log: silentLogger,
  });
  const modelDir = join(trained.runDir, 'model');
  const card = await readModelCard(modelDir);
  assert.equal(card.backbone.format, 'onnx');
  assert.equal(card.backbone.layout, 'NHWC');
  assert.equal(card.backbone.engine, 'onnxruntime');
  assert.equal(card.backbone.converted_from, 'tfjs-layers');
  assert.equal(card.backbone.feature_layer, 'features');
  assert.equal(card.backbone.path, 'backbone/model.onnx');
  assert.equal(card.preprocess.name, 'tf');
  assert.deepEqual(await readdir(join(modelDir, 'backbone')), ['model.onnx']);

  const outcome = await runEvalModel({ runDir: trained.runDir, device: 'cpu', batchSize: 8, cacheDir, log: silentLogger });
  assert.ok(outcome);
  const evaluation = JSON.parse(await readFile(join(trained.runDir, 'eval.json'), 'utf8')) as EvalResult;
  const dataset = await openDataset(dataDir);
  assert.equal(evaluation.count, dataset.manifest.splits.test.count);
  assert.equal(evaluation.model.backbone_sha256, card.backbone.sha256);

  // The saved model predicts the logged validation accuracy, through the converted backbone (ONNX Runtime).
  const count = dataset.manifest.splits.val.count;
  const model = await loadModel(modelDir, { device: 'cpu' });
  const probs = await model.predict(await dataset.readPixels('val', 0, count), count);
  await model.dispose();
  const labels = await dataset.labels('val');
  let correct = 0;
  for (let i = 0; i < count; i++) if ((probs[2 * i + 1]! > probs[2 * i]! ? 1 : 0) === labels[i]) correct++;
  assert.equal(correct / count, card.metrics.val_accuracy);
});
