// train --augment flip (twice the training rows, mirrored features cached apart) and eval-model --tta flip, recorded.
import assert from 'node:assert/strict';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { after, before, test } from 'node:test';
import { openDataset, readCsvRows, readModelCard, silentLogger, type Dataset } from '@imgpipe/kit';
import { extractFeatures, loadBackbone, loadModel, mirrorImages } from '@imgpipe/engines';
import { runEvalModel } from '@imgpipe/eval';
import { servedModel } from '@imgpipe/serve';
import { makeTempDir, type TempDir } from '@imgpipe/test-utils';
import { runTrain, type TrainOptions } from '@imgpipe/train';
import { extractSplitFeatures } from '../packages/train/src/backbone-features.js';
import { tinyBackbone, writeLearnableDataset, TEST_SIZE } from '@imgpipe/test-utils';

let temp: TempDir;
let dataset: Dataset;
let base: TrainOptions;

before(async () => {
  temp = await makeTempDir('imgpipe-augment-');
  const dataDir = await writeLearnableDataset(join(temp.path, 'data'), { train: 24, val: 12, test: 10 });
  dataset = await openDataset(dataDir);
  base = {
    dataDir,
    out: join(temp.path, 'runs'),
    ...(await tinyBackbone(join(temp.path, 'backbone'))),
    cacheDir: join(temp.path, 'cache'),
    space: { lr: [0.01], layer_size: [8], dropout: [0], batch_size: [8], epochs: [2] },
    strategy: 'grid',
    runs: 0,
    seed: 42,
    device: 'wasm',
    extractBatchSize: 8,
  };
});
after(() => temp.remove());

test('--augment flip trains on every training image and its mirror: twice the rows, the mirrored ones last', async () => {
  const backbone = await loadBackbone(base.backbone, { device: 'cpu', featureLayer: base.featureLayer!, preprocess: 'torch', inputSize: TEST_SIZE });
  const pixels = await dataset.readPixels('train', 0, 24);
  const mirrored = await backbone.extract(mirrorImages(pixels, 24, TEST_SIZE), 24);
  const plain = await extractFeatures({ dataset, split: 'train', backbone, batchSize: 8, cache: false });
  const { features } = await extractSplitFeatures(
    dataset,
    backbone,
    { ...base, augment: 'flip', cacheDir: join(temp.path, 'cache-direct') },
    silentLogger,
  );
  const labels = await dataset.labels('train');
  assert.equal(features.train.count, 48);
  assert.equal(features.val.count, 12);
  assert.deepEqual(features.train.labels, Int32Array.from([...labels, ...labels]));
  assert.deepEqual(features.train.features.subarray(0, 24 * 8), plain.features);
  for (let i = 0; i < mirrored.length; i++) assert.ok(Math.abs(features.train.features[24 * 8 + i]! - mirrored[i]!) < 1e-5);
});

test('train --augment flip is recorded in run.json and the card; eval-model --tta flip in eval.json, results.csv and the card', async () => {
  const plain = await runTrain(base);
  const flipped = await runTrain({ ...base, augment: 'flip' });
  assert.notEqual(flipped.runDir, plain.runDir);
  const run = JSON.parse(await readFile(join(flipped.runDir, 'run.json'), 'utf8'));
  assert.equal(run.params.augment, 'flip');
  assert.equal(run.dataset.training_rows, 48);
  const plainRun = JSON.parse(await readFile(join(plain.runDir, 'run.json'), 'utf8'));
  assert.equal(plainRun.params.augment, 'none');
  assert.equal(plainRun.dataset.training_rows, 24);
  assert.equal((await readModelCard(flipped.modelDir)).augment, 'flip');
  assert.equal((await readModelCard(plain.modelDir)).augment, 'none');
  // Plain train, plain val and mirrored train features: three cache entries; the second run added only the mirrored one.
  const entries = (await readdir(join(base.cacheDir!, 'features'))).filter((f) => f.endsWith('.json'));
  assert.equal(entries.length, 3);
  const metas = await Promise.all(entries.map(async (f) => JSON.parse(await readFile(join(base.cacheDir!, 'features', f), 'utf8'))));
  assert.deepEqual(metas.map((m) => `${m.split}${m.view ? `/${m.view}` : ''}`).sort(), ['train', 'train/mirror', 'val']);

  const none = await runEvalModel({ runDir: flipped.runDir, device: 'wasm', batchSize: 4 });
  assert.equal(none.result.tta, 'none');
  assert.equal(none.result.model.augment, 'flip');
  const tta = await runEvalModel({ runDir: flipped.runDir, device: 'wasm', batchSize: 4, tta: 'flip' });
  assert.equal(tta.result.tta, 'flip');
  const card = await readModelCard(flipped.modelDir);
  assert.equal(card.tta, 'flip');
  assert.equal(card.metrics.test_accuracy, tta.result.test_accuracy);
  const results = await readCsvRows(Readable.from([await readFile(join(flipped.runDir, 'results.csv'))]), { source: 'results.csv' });
  assert.equal(results.rows.find((r) => r.best === 'true')!.test_tta, 'flip');
  // The card's tta is the default from now on: eval-model without --tta, and serve.
  const again = await runEvalModel({ runDir: flipped.runDir, device: 'wasm', batchSize: 5 });
  assert.equal(again.result.tta, 'flip');
  assert.equal(again.result.test_loss, tta.result.test_loss);
  assert.notEqual(tta.result.test_loss, none.result.test_loss);

  const loaded = await loadModel(flipped.modelDir, { device: 'wasm' });
  try {
    const served = servedModel(loaded, { name: 'm', maxPixels: 1e6, numTensors: () => 0, tta: 'flip' });
    const pixels = await dataset.readPixels('test', 0, 3);
    const a = await loaded.predict(pixels, 3);
    const b = await loaded.predict(mirrorImages(pixels, 3, TEST_SIZE), 3);
    const got = await served.predict(pixels, 3);
    for (let i = 0; i < a.length; i++) assert.ok(Math.abs(got[i]! - (a[i]! + b[i]!) / 2) < 1e-6);
    assert.equal(served.card?.tta, 'flip');
  } finally {
    await loaded.dispose();
  }
});
