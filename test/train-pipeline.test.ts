// prep-data | train with the real bins (run `npx tsc -b` first): generated images -> prep-data's dataset pointer
// on train's stdin -> a run directory whose model reloads and gives the logged validation accuracy.
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, test } from 'node:test';
import { loadModel } from '@imgpipe/engines';
import { openDataset, readModelCard } from '@imgpipe/kit';
import { buildTinyConvBackbone, generateImageSet, makeTempDir, TINY_IMAGE_SIZES, type TempDir } from '@imgpipe/test-utils';
import { execa } from 'execa';

const PREP = fileURLToPath(new URL('../packages/prep-data/bin/prep-data.js', import.meta.url));
const TRAIN = fileURLToPath(new URL('../packages/train/bin/train.js', import.meta.url));
const SIZE = 16;
let temp: TempDir;

before(async () => {
  temp = await makeTempDir('imgpipe-train-pipeline-');
});
after(() => temp.remove());

test('prep-data | train: the pointer flows through stdin, the best model reloads with its logged val accuracy', async () => {
  const set = await generateImageSet({ dir: join(temp.path, 'images'), count: 48, seed: 11, sizes: TINY_IMAGE_SIZES });
  const tiny = await buildTinyConvBackbone({ dir: join(temp.path, 'backbone'), inputSize: SIZE, format: 'tfjs-layers', seed: 2 });
  const env = { IMGPIPE_NO_WEBGPU: '1', IMGPIPE_CACHE_DIR: join(temp.path, 'cache') };
  const prep = await execa(
    process.execPath,
    [
      PREP,
      '--csv',
      set.csvPath,
      '--out',
      join(temp.path, 'prep'),
      '--img-dimensions',
      String(SIZE),
      '--train-pct',
      '0.5',
      '--val-pct',
      '0.25',
      '--test-pct',
      '0.25',
    ],
    { env, reject: false },
  );
  assert.equal(prep.exitCode, 0, prep.stderr);
  const train = await execa(
    process.execPath,
    [
      TRAIN,
      '--out',
      join(temp.path, 'runs'),
      '--backbone',
      tiny.path,
      '--feature-layer',
      tiny.featureLayer,
      '--device',
      'wasm',
      '--lr',
      '0.01,0.05',
      '--layer-size',
      '8,16',
      '--epochs',
      '4',
      '--batch-size',
      '8',
    ],
    { input: prep.stdout, env, reject: false },
  );
  assert.equal(train.exitCode, 0, train.stderr);
  assert.match(train.stderr, /trial 4\/4/);
  const pointer = JSON.parse(train.stdout.trim());
  assert.equal(pointer.kind, 'run');
  const trials = (await readFile(join(pointer.path, 'trials.csv'), 'utf8')).trim().split('\n');
  assert.equal(trials.length, 5);

  const card = await readModelCard(pointer.best);
  assert.equal(card.backbone.format, 'tfjs-layers');
  assert.equal(card.backbone.path, 'backbone/model.json');
  const dataset = await openDataset(join(temp.path, 'prep'));
  assert.deepEqual(card.labels, dataset.manifest.classes);
  const count = dataset.manifest.splits.val.count;
  const model = await loadModel(pointer.best, { device: 'wasm' });
  const probs = await model.predict(await dataset.readPixels('val', 0, count), count);
  await model.dispose();
  const labels = await dataset.labels('val');
  let correct = 0;
  for (let i = 0; i < count; i++) if ((probs[2 * i + 1]! > probs[2 * i]! ? 1 : 0) === labels[i]) correct++;
  assert.equal(correct / count, card.metrics.val_accuracy);
});
