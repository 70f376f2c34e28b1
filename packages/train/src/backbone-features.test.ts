import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { silentLogger } from '@imgpipe/kit';
import { buildTinyConvBackbone, makeTempDir } from '@imgpipe/test-utils';
import { openBackbone } from './backbone-features.js';
import type { TrainOptions } from './train-options.js';

test('a TF.js layers backbone runs converted on ONNX Runtime, except under --fine-tune, which trains the TF.js model', async () => {
  await using temp = await makeTempDir('imgpipe-open-backbone-');
  const tiny = await buildTinyConvBackbone({ dir: join(temp.path, 'tiny'), inputSize: 16, format: 'tfjs-layers', seed: 1 });
  const base = { backbone: tiny.path, device: 'cpu', featureLayer: 'features', cacheDir: join(temp.path, 'cache') } as TrainOptions;
  const frozen = await openBackbone(base, 16, silentLogger);
  assert.equal(frozen.info.engine, 'onnxruntime');
  assert.equal(frozen.info.converted_from, 'tfjs-layers');
  await frozen.dispose();
  const tuned = await openBackbone({ ...base, fineTune: { mode: 'all', epochs: 1 } } as TrainOptions, 16, silentLogger);
  assert.equal(tuned.info.engine, 'tfjs');
  assert.equal(tuned.info.format, 'tfjs-layers');
  assert.equal(tuned.files[0], tiny.path, 'fine-tuning reads the TF.js model.json');
  await tuned.dispose();
});
