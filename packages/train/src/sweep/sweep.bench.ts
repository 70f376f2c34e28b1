// The whole sweep, split into feature extraction and head training: the seed's 3x3 grid (lr x layer size,
// `--epochs` each) against a 1-trial sweep, each from an empty feature cache. Because the backbone runs once per
// image whatever the number of trials, the 9-trial sweep should cost less than twice the 1-trial one.
// Backbone: ResNet50 with random weights at 224 in ONNX (test-utils' buildResnet50Backbones; nothing downloaded),
// or --backbone tiny (the tiny conv net, for a quick check). Images: random pixels in prep-data's layout.
// Usage: IMGPIPE_BENCH_FILTER=sweep node scripts/run-bench.mjs [--images 2000] [--epochs 3] [--backbone resnet50|tiny]
//        [--device wasm]
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { createLogger } from '@imgpipe/kit';
import { parseDevice } from '@imgpipe/engines';
import { writeBenchResults, type BenchResult, buildTinyConvBackbone, makeTempDir, writeSyntheticDataset } from '@imgpipe/test-utils';
import { buildResnet50Backbones } from '@imgpipe/engines/test-resnet50-model';
import { runTrain } from '../train.js';

const { values } = parseArgs({
  options: {
    images: { type: 'string', default: '400' },
    epochs: { type: 'string', default: '3' },
    backbone: { type: 'string', default: 'resnet50' },
    device: { type: 'string', default: 'wasm' },
  },
});
const images = Number(values.images);
const epochs = Number(values.epochs);
const device = parseDevice(values.device);
const log = createLogger({ name: 'bench', stream: process.stderr });
const temp = await makeTempDir('imgpipe-bench-sweep-');
try {
  const resnet = values.backbone === 'resnet50';
  const size = resnet ? 224 : 32;
  const backbone = resnet
    ? { backbone: (await buildResnet50Backbones({ dir: join(temp.path, 'models') })).onnx, featureLayer: 'features' }
    : await buildTinyConvBackbone({ dir: join(temp.path, 'models'), inputSize: size, format: 'onnx' }).then((t) => ({
        backbone: t.path,
        featureLayer: t.featureLayer,
      }));
  const train = Math.round(images * 0.7);
  const val = Math.round(images * 0.15);
  const dataDir = await writeSyntheticDataset({ dir: join(temp.path, 'data'), size, counts: { train, val, test: images - train - val } });
  const results: BenchResult[] = [];
  const sweeps = [
    { name: '3x3 grid', lr: [0.001, 0.005, 0.01], layer_size: [256, 512, 1024] },
    { name: '1 trial', lr: [0.001], layer_size: [512] },
  ];
  for (const sweep of sweeps) {
    const started = performance.now();
    const result = await runTrain({
      dataDir,
      out: join(temp.path, `runs-${sweep.name.replace(/\W/g, '')}`),
      cacheDir: join(temp.path, `cache-${sweep.name.replace(/\W/g, '')}`),
      ...backbone,
      preprocess: 'torch',
      space: { lr: sweep.lr, layer_size: sweep.layer_size, dropout: [0.5], batch_size: [32], epochs: [epochs] },
      strategy: 'grid',
      runs: 0,
      seed: 42,
      device,
      extractBatchSize: 32,
      log,
    });
    const total = (performance.now() - started) / 1000;
    const run = JSON.parse(await (await import('node:fs/promises')).readFile(join(result.runDir, 'run.json'), 'utf8'));
    const params = { trials: result.records.length, images: train + val, size, epochs, backbone: values.backbone, device };
    results.push({ name: `${sweep.name}: total seconds`, unit: 's', value: total, params });
    results.push({ name: `${sweep.name}: feature extraction seconds`, unit: 's', value: run.timings.feature_extraction_seconds, params });
    results.push({ name: `${sweep.name}: head training seconds`, unit: 's', value: run.timings.head_training_seconds, params });
  }
  const [grid, one] = [results[0]!.value, results[3]!.value];
  results.push({ name: '3x3 grid / 1 trial total time', unit: 'x', value: grid / one, params: { aim: '< 2' } });
  await writeBenchResults('train-sweep', results);
} finally {
  await temp.remove();
}
