// TF.js layers backbone on ONNX Runtime vs TF.js: a MobileNet v1 shaped model (alpha 0.75, 224x224, random
// weights, built here with engines' test helper buildMobileNetV1 (test-mobilenet-model.ts); nothing is downloaded), features at its global
// pool. Measures, in the same run, images/s of extractFeatures (disk reads, preprocessing, batching; cache off) on
//   - TF.js WebAssembly with 2 worker threads (--device wasm, what a TF.js backbone ran on before), and
//   - the converted ONNX model on ONNX Runtime's CPU provider (--device cpu),
// plus the one-off conversion time and the largest feature difference between the two.
// Usage: IMGPIPE_BENCH_FILTER=tfjs-onnx node scripts/run-bench.mjs [--images 128] [--tfjs-images 64] [--batch 16] [--workers 2]
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { makeTempDir, writeSyntheticDataset } from '@imgpipe/test-utils';
import { buildMobileNetV1 } from '@imgpipe/engines/test-mobilenet-model';
import { loadBackbone } from '@imgpipe/engines';
import { writeBenchResults, type BenchResult } from '@imgpipe/test-utils';
import { openDataset } from '@imgpipe/kit';
import { extractFeatures } from '@imgpipe/engines';
import { createLogger } from '@imgpipe/kit';

const { values } = parseArgs({
  options: {
    images: { type: 'string', default: '128' },
    'tfjs-images': { type: 'string', default: '64' },
    batch: { type: 'string', default: '16' },
    workers: { type: 'string', default: '2' },
  },
});
const images = Number(values.images);
const tfjsImages = Number(values['tfjs-images']);
const batch = Number(values.batch);
const workers = Number(values.workers);
const SIZE = 224;
const ALPHA = 0.75;
const log = createLogger({ name: 'bench', stream: process.stderr });
const results: BenchResult[] = [];
const model = { model: `MobileNet v1 ${ALPHA} ${SIZE} (random weights)`, feature_layer: 'global_pool', size: SIZE, batch };

const temp = await makeTempDir('imgpipe-bench-tfjs-onnx-');
try {
  const mobilenet = await buildMobileNetV1({ dir: join(temp.path, 'mobilenet'), layout: 'keras', alpha: ALPHA, inputSize: SIZE });
  await writeSyntheticDataset({ dir: join(temp.path, 'data'), size: SIZE, counts: { train: images, val: tfjsImages, test: 1 } });
  const dataset = await openDataset(join(temp.path, 'data'));
  const common = { featureLayer: mobilenet.featureLayer, preprocess: 'tf', cacheDir: join(temp.path, 'cache'), log };

  // TF.js on WebAssembly, a pool of worker threads.
  const tfjs = await loadBackbone(mobilenet.path, { ...common, device: 'wasm', workers });
  const warm = await dataset.readPixels('val', 0, Math.min(batch, tfjsImages));
  await Promise.all(Array.from({ length: tfjs.concurrency }, () => tfjs.extract(warm, Math.min(batch, tfjsImages))));
  const tfjsRun = await extractFeatures({
    dataset,
    split: 'val',
    backbone: tfjs,
    batchSize: Math.min(batch, Math.ceil(tfjsImages / workers)),
    cache: false,
    log,
  });
  results.push({
    name: `tfjs wasm, ${workers} worker threads (extractFeatures)`,
    unit: 'images/s',
    value: tfjsImages / tfjsRun.seconds,
    params: { ...model, device: 'wasm', workers, images: tfjsImages },
  });
  await tfjs.dispose();

  // The same model converted to ONNX, on ONNX Runtime's CPU provider.
  const t = performance.now();
  const onnx = await loadBackbone(mobilenet.path, { ...common, device: 'cpu' });
  results.push({
    name: 'conversion to ONNX + session start (once; cached afterwards)',
    unit: 's',
    value: (performance.now() - t) / 1000,
    params: { engine: onnx.info.engine },
  });
  if (onnx.info.engine !== 'onnxruntime') throw new Error('the MobileNet model did not convert');
  await onnx.extract(warm, Math.min(batch, tfjsImages));
  const onnxRun = await extractFeatures({ dataset, split: 'train', backbone: onnx, batchSize: batch, cache: false, log });
  results.push({
    name: 'converted, onnxruntime cpu (extractFeatures)',
    unit: 'images/s',
    value: images / onnxRun.seconds,
    params: { ...model, device: onnx.device, images },
  });
  const onnxVal = await extractFeatures({ dataset, split: 'val', backbone: onnx, batchSize: batch, cache: false, log });
  const speedup = results[2]!.value / results[0]!.value;
  results.push({ name: 'onnxruntime / tfjs wasm images/s', unit: 'ratio', value: speedup, params: { workers } });
  let max = 0;
  for (let i = 0; i < onnxVal.features.length; i++) max = Math.max(max, Math.abs(onnxVal.features[i]! - tfjsRun.features[i]!));
  results.push({
    name: 'onnx vs tfjs features, max abs difference',
    unit: 'abs',
    value: max,
    params: { images: tfjsImages, dim: onnx.info.feature_dim },
  });
  await onnx.dispose();
  const path = await writeBenchResults('tfjs-onnx', results);
  log.info(`wrote ${path}`);
} finally {
  await temp.remove();
}
