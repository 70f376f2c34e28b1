import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { silentLogger } from '@imgpipe/kit';
import { loadBackbone } from '@imgpipe/engines';
import { buildTinyConvBackbone, makeTempDir } from '@imgpipe/test-utils';
import { openBackbone } from './backbone-features.js';
import type { TrainOptions } from './train-options.js';

test('a TF.js layers backbone runs converted on ONNX Runtime, under --fine-tune too; fine-tuning gets the TF.js model', async () => {
  await using temp = await makeTempDir('imgpipe-open-backbone-');
  const tiny = await buildTinyConvBackbone({ dir: join(temp.path, 'tiny'), inputSize: 16, format: 'tfjs-layers', seed: 1 });
  const base = { backbone: tiny.path, device: 'cpu', featureLayer: 'features', cacheDir: join(temp.path, 'cache') } as TrainOptions;
  const frozen = await openBackbone(base, 16, silentLogger);
  assert.equal(frozen.info.engine, 'onnxruntime');
  assert.equal(frozen.info.converted_from, 'tfjs-layers');
  assert.equal(frozen.tunable, undefined);
  await frozen.dispose();
  const tuned = await openBackbone({ ...base, fineTune: { mode: 'all', epochs: 1 } } as TrainOptions, 16, silentLogger);
  assert.equal(tuned.info.engine, 'onnxruntime', "the sweep's features come from the converted ONNX graph");
  assert.equal(tuned.info.format, 'onnx');
  const tunable = tuned.tunable!;
  assert.equal(tunable.files[0], tiny.path, 'fine-tuning reads the TF.js model.json');
  await tuned.dispose();
  // Described as loadBackbone describes the TF.js model itself (its hash, feature layer, size, preprocessing).
  const onTfjs = await loadBackbone(tiny.path, {
    device: 'wasm',
    featureLayer: 'features',
    cacheDir: join(temp.path, 'cache'),
    inputSize: 16,
    workers: 1,
  });
  assert.equal(onTfjs.info.engine, 'tfjs');
  assert.deepEqual(tunable.info, onTfjs.info);
  assert.deepEqual(tunable.files, onTfjs.files, 'model.json and its weight files');
  await onTfjs.dispose();
});
