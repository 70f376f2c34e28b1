// The cost and the accuracy effect of train --augment flip and eval-model --tta flip on generated images
// (test-utils' cat/dog shapes, prep-data to --size px) through test-utils' tiny random conv backbone (ONNX, 8
// features): train wall time (cold feature cache) without and with --augment flip; eval-model images/s and test
// accuracy with --tta none and flip, for both models. The generated classes may be mirror-symmetric enough that
// the effect is nil; that is what it reports.
// Usage: IMGPIPE_BENCH_FILTER=augment-tta node scripts/run-bench.mjs [--images 400] [--size 32]
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { runEvalModel } from '@imgpipe/eval';
import { runPrepData } from '@imgpipe/prep-data';
import { buildTinyConvBackbone, generateImageSet, makeTempDir, TINY_IMAGE_SIZES, writeBenchResults, type BenchResult } from '@imgpipe/test-utils';
import { runTrain } from '@imgpipe/train';

const { values } = parseArgs({ options: { images: { type: 'string', default: '400' }, size: { type: 'string', default: '32' } } });
const images = Number(values.images);
const size = Number(values.size);
const results: BenchResult[] = [];
const temp = await makeTempDir('imgpipe-bench-augment-');
try {
  const set = await generateImageSet({ dir: join(temp.path, 'images'), count: images, seed: 3, sizes: TINY_IMAGE_SIZES });
  const dataDir = join(temp.path, 'prep');
  await runPrepData({
    csv: await readFile(set.csvPath),
    csvSource: set.csvPath,
    out: dataDir,
    size,
    fractions: { train: 0.6, val: 0.2, test: 0.2 },
    seed: 42,
    quiet: true,
    concurrency: 2,
  });
  const tiny = await buildTinyConvBackbone({ dir: join(temp.path, 'backbone'), inputSize: size, format: 'onnx', seed: 1 });
  const common = { images, size, backbone: 'tiny random conv (ONNX, 8 features)', grid: 'lr 0.01,0.05 x layer 16 x epochs 20' };
  const train = (augment: 'none' | 'flip', name: string) =>
    runTrain({
      dataDir,
      out: join(temp.path, `runs-${name}`),
      backbone: tiny.path,
      featureLayer: tiny.featureLayer,
      preprocess: 'torch',
      cacheDir: join(temp.path, `cache-${name}`),
      space: { lr: [0.01, 0.05], layer_size: [16], dropout: [0], batch_size: [16], epochs: [20] },
      strategy: 'grid',
      runs: 0,
      seed: 42,
      device: 'wasm',
      extractBatchSize: 32,
      augment,
    });
  await train('none', 'warm-up'); // loads TF.js and ONNX Runtime once, outside the timings
  for (const augment of ['none', 'flip'] as const) {
    const started = performance.now();
    const trained = await train(augment, augment);
    const trainSeconds = (performance.now() - started) / 1000;
    results.push({
      name: `train --augment ${augment} wall time (cold feature cache)`,
      unit: 's',
      value: trainSeconds,
      params: { ...common, val_accuracy: trained.best.val_accuracy },
    });
    for (const tta of ['none', 'flip'] as const) {
      const evalStarted = performance.now();
      const { result } = await runEvalModel({ runDir: trained.runDir, device: 'wasm', batchSize: 32, tta });
      const rate = result.count / ((performance.now() - evalStarted) / 1000);
      results.push({
        name: `eval-model --tta ${tta} (model --augment ${augment})`,
        unit: 'images/s',
        value: rate,
        params: { ...common, test_images: result.count },
      });
      results.push({
        name: `test accuracy, --augment ${augment} --tta ${tta}`,
        unit: 'accuracy',
        value: result.test_accuracy,
        params: { ...common, test_loss: result.test_loss },
      });
    }
  }
} finally {
  await temp.remove();
}
await writeBenchResults('augment-tta', results);
