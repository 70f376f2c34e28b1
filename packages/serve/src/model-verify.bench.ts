// Benchmark: what verifying a model directory as a whole costs serve's start-up, on a ResNet50 ONNX backbone with
// random weights (~100 MB). Figures: verification alone (sha256 of every file), serve's loader end to end (verify +
// ONNX Runtime session + head), the backbone's load alone (the saved file, its feature output already exposed),
// and the backbone's load from the original file (the feature output added by re-encoding the protobuf, as every
// load did before). Minimum of --repeat runs each.
//
//   IMGPIPE_BENCH_FILTER=model-verify node scripts/run-bench.mjs [--repeat 3] [--device cpu]
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { openModelDir, silentLogger } from '@imgpipe/kit';
import { Head, loadBackbone, loadTf, parseDevice, saveModelDir } from '@imgpipe/engines';
import { makeTempDir, writeBenchResults, type BenchResult } from '@imgpipe/test-utils';
import { buildResnet50Backbones } from '@imgpipe/engines/test-resnet50-model';
import { createModelLoader } from './model-loader.js';

const { values } = parseArgs({ options: { repeat: { type: 'string', default: '3' }, device: { type: 'string', default: 'cpu' } }, strict: false });
const repeat = Number(values.repeat);
const device = parseDevice(String(values.device));

async function minMs(work: () => Promise<unknown>): Promise<number> {
  let best = Infinity;
  for (let i = 0; i < repeat; i++) {
    const started = performance.now();
    await work();
    best = Math.min(best, performance.now() - started);
  }
  return best;
}

const temp = await makeTempDir();
try {
  const files = await buildResnet50Backbones({ dir: join(temp.path, 'resnet50') });
  const { tf } = await loadTf(device, silentLogger);
  const backbone = await loadBackbone(files.onnx, { device, featureLayer: files.featureLayer, preprocess: 'torch', inputSize: 224 });
  const head = new Head(tf, { inputDim: backbone.info.feature_dim, classes: 2, layer_size: 64, dropout: 0, lr: 0.01, batch_size: 32, seed: 1 });
  const layers = head.toLayersModel();
  const modelDir = join(temp.path, 'model');
  await saveModelDir(modelDir, {
    card: {
      format: 'imgpipe-model/1',
      labels: ['cat', 'dog'],
      input: { size: 224, channels: 3, fit: 'fill' },
      preprocess: backbone.info.preprocess,
      backbone: { ...backbone.info, path: '' },
      head: { path: 'head/model.json', layer_size: 64, dropout: 0, lr: 0.01, epochs: 1, batch_size: 32 },
      metrics: {},
      dataset: { manifest_sha256: 'bench' },
      created: new Date().toISOString(),
      versions: {},
    },
    backboneFiles: backbone.files,
    head: layers,
  });
  layers.dispose();
  head.dispose();
  await backbone.dispose();
  const card = await openModelDir(modelDir);
  const bytes = (card.files ?? []).reduce((sum, f) => sum + f.size, 0);
  const params = { backbone: 'resnet50 (random weights)', mb: Number((bytes / 1e6).toFixed(1)), files: card.files?.length, device, repeat };

  const verify = await minMs(() => openModelDir(modelDir));
  const loader = createModelLoader({
    device,
    aws: { bucket_name: '', aws_access_key_id: '', aws_secret_access_key: '', aws_default_region: '', results_upload_path: '', endpoint: '' },
    maxPixels: 1e8,
    log: silentLogger,
  });
  const serveLoad = await minMs(async () => (await loader(modelDir)).dispose());
  const options = { device, featureLayer: card.backbone.feature_layer, preprocess: 'torch', inputSize: 224 };
  const savedBackbone = await minMs(async () => (await loadBackbone(join(modelDir, card.backbone.path), options)).dispose());
  const originalBackbone = await minMs(async () => (await loadBackbone(files.onnx, options)).dispose());
  const results: BenchResult[] = [
    { name: 'verify model directory (sha256 of every file)', unit: 'ms', value: verify, params },
    { name: "serve's model load, verification included", unit: 'ms', value: serveLoad, params },
    { name: 'backbone load, saved file (feature output exposed)', unit: 'ms', value: savedBackbone, params },
    {
      name: 'backbone load, original file (protobuf re-encoded at load, as before)',
      unit: 'ms',
      value: originalBackbone,
      params: { ...params, mb: Number(((await stat(files.onnx)).size / 1e6).toFixed(1)) },
    },
    { name: 'verification share of serve model load', unit: '%', value: (100 * verify) / serveLoad, params },
  ];
  await writeBenchResults('model-verify', results);
} finally {
  await temp.remove();
}
