// The one mirror (engines' mirrorImages) as train --augment flip and --tta flip use it: features and predictions.
import assert from 'node:assert/strict';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { buildTinyConvBackbone, makeTempDir, writeSyntheticDataset, type TempDir } from '@imgpipe/test-utils';
import { extractFeatures, loadBackbone, loadModel, mirrorImages, withTta, type Backbone, type LoadedModel } from '@imgpipe/engines';
import { openDataset, type Dataset } from '@imgpipe/kit';
import { buildTestModelDir } from './test-model.js';

const SIZE = 16;

describe('mirrorImages', () => {
  it('reverses each row of pixels, keeping RGB order, and twice is the identity', () => {
    const size = 3;
    const pixels = Uint8Array.from({ length: 2 * size * size * 3 }, (_, i) => i);
    const out = mirrorImages(pixels, 2, size);
    // image 1, row 2, x = 0 takes x = 2 of the same row.
    const at = (img: number, y: number, x: number) => ((img * size + y) * size + x) * 3;
    assert.deepEqual([...out.subarray(at(1, 2, 0), at(1, 2, 0) + 3)], [...pixels.subarray(at(1, 2, 2), at(1, 2, 2) + 3)]);
    assert.deepEqual([...out.subarray(at(0, 0, 1), at(0, 0, 1) + 3)], [...pixels.subarray(at(0, 0, 1), at(0, 0, 1) + 3)]);
    assert.notDeepEqual(out, pixels);
    assert.deepEqual(mirrorImages(out, 2, size), pixels);
    assert.throws(() => mirrorImages(pixels, 3, size), /expected 3 images/);
  });
});

describe('mirrored features and --tta flip', () => {
  let temp: TempDir;
  let dataset: Dataset;
  let backbone: Backbone;
  let model: LoadedModel;

  before(async () => {
    temp = await makeTempDir('imgpipe-mirror-');
    await writeSyntheticDataset({ dir: join(temp.path, 'data'), size: SIZE, counts: { train: 11, val: 3, test: 6 } });
    dataset = await openDataset(join(temp.path, 'data'));
    const tiny = await buildTinyConvBackbone({ dir: join(temp.path, 'onnx'), inputSize: SIZE, seed: 5, format: 'onnx' });
    backbone = await loadBackbone(tiny.path, { device: 'cpu', featureLayer: 'features', preprocess: 'torch' });
    model = await loadModel(await buildTestModelDir(join(temp.path, 'model'), { size: SIZE, seed: 3 }), { device: 'wasm' });
  });
  after(async () => {
    await backbone?.dispose();
    await model?.dispose();
    await temp.remove();
  });

  it('flipped features equal the features of pre-mirrored pixels, and are cached apart from the plain ones', async () => {
    const cacheDir = join(temp.path, 'cache');
    const plain = await extractFeatures({ dataset, split: 'train', backbone, batchSize: 4, cacheDir });
    const flipped = await extractFeatures({ dataset, split: 'train', backbone, batchSize: 4, cacheDir, mirror: true });
    assert.notEqual(flipped.key, plain.key);
    const mirrored = await backbone.extract(mirrorImages(await dataset.readPixels('train', 0, 11), 11, SIZE), 11);
    assert.equal(flipped.features.length, mirrored.length);
    for (let i = 0; i < mirrored.length; i++) assert.ok(Math.abs(flipped.features[i]! - mirrored[i]!) < 1e-5, `feature ${i}`);
    assert.ok(
      plain.features.some((v, i) => Math.abs(v - flipped.features[i]!) > 1e-4),
      'random images differ from their mirrors',
    );
    const files = (await readdir(join(cacheDir, 'features'))).sort();
    assert.deepEqual(files, [`${plain.key}.f32`, `${plain.key}.json`, `${flipped.key}.f32`, `${flipped.key}.json`].sort());
    const again = await extractFeatures({ dataset, split: 'train', backbone, batchSize: 5, cacheDir, mirror: true });
    assert.equal(again.fromCache, true);
    assert.deepEqual(again.features, flipped.features);
    const plainAgain = await extractFeatures({ dataset, split: 'train', backbone, batchSize: 5, cacheDir });
    assert.deepEqual(plainAgain.features, plain.features);
  });

  it('withTta(model, "flip") gives the mean of the softmax of each image and of its mirror', async () => {
    const n = 6;
    const pixels = await dataset.readPixels('test', 0, n);
    const a = await model.predict(pixels, n);
    const b = await model.predict(mirrorImages(pixels, n, SIZE), n);
    const tta = await withTta(model, 'flip').predict(pixels, n);
    assert.equal(tta.length, a.length);
    for (let i = 0; i < a.length; i++) assert.ok(Math.abs(tta[i]! - (a[i]! + b[i]!) / 2) < 1e-6, `value ${i}: ${tta[i]} vs ${(a[i]! + b[i]!) / 2}`);
    assert.ok(
      a.some((v, i) => Math.abs(v - b[i]!) > 1e-6),
      'the mirror changes some prediction',
    );
    for (let r = 0; r < n; r++) assert.ok(Math.abs(tta[r * 2]! + tta[r * 2 + 1]! - 1) < 1e-5);
    assert.equal(withTta(model, 'none'), model);
  });
});
