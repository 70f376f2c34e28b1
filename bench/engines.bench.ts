// Engines benchmark: ResNet50 at 224 with random weights, built here (nothing is downloaded) in both formats with
// the same weights (engines' test helper buildResnet50Backbones, test-resnet50-model.ts: ONNX written with onnx-proto, TF.js layers model
// saved through engines' file IO handler). Measures images/s of
//   - ONNX Runtime: the bare engine (session.run on a ready float tensor) and the pipeline (extractFeatures:
//     disk reads, preprocessing, batching; cache off);
//   - TF.js: the bare engine in this thread, and the pipeline with 1 and 2 wasm workers (or on --device webgpu).
// Usage: IMGPIPE_BENCH_FILTER=engines node scripts/run-bench.mjs [--images 96] [--tfjs-images 24] [--batch 16]
//        [--device cpu|webgpu|cuda|auto] [--workers 1,2] [--no-tfjs]
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { makeTempDir, writeSyntheticDataset } from '@imgpipe/test-utils';
import { buildResnet50Backbones } from '@imgpipe/engines/test-resnet50-model';
import { loadBackbone } from '@imgpipe/engines';
import { openTfjsRunner } from '@imgpipe/engines/backbone-tfjs-runner';
import { writeBenchResults, type BenchResult } from '@imgpipe/test-utils';
import { openDataset } from '@imgpipe/kit';
import { parseDevice } from '@imgpipe/engines';
import { extractFeatures } from '@imgpipe/engines';
import { createLogger } from '@imgpipe/kit';
import { createOnnxSession, loadOrt } from '@imgpipe/engines/onnx';
import { decodeOnnx, exposeOutput } from '@imgpipe/engines/onnx-graph';
import { preprocessPixels, preprocessSpec } from '@imgpipe/engines';
import { loadTf } from '@imgpipe/engines';

const { values } = parseArgs({
  options: {
    images: { type: 'string', default: '96' },
    'tfjs-images': { type: 'string', default: '24' },
    batch: { type: 'string', default: '16' },
    device: { type: 'string', default: 'cpu' },
    workers: { type: 'string', default: '1,2' },
    'no-tfjs': { type: 'boolean', default: false },
  },
});
const images = Number(values.images);
const tfjsImages = Number(values['tfjs-images']);
const batch = Number(values.batch);
const device = parseDevice(values.device);
const workerCounts = values.workers!.split(',').map(Number);
const SIZE = 224;
const log = createLogger({ name: 'bench', stream: process.stderr });
const results: BenchResult[] = [];
const torch = preprocessSpec('torch');

const temp = await makeTempDir('imgpipe-bench-engines-');
try {
  let t = performance.now();
  const models = await buildResnet50Backbones({ dir: join(temp.path, 'models') });
  log.info(`built ResNet50 (random weights) in ONNX and TF.js in ${((performance.now() - t) / 1000).toFixed(1)}s`);
  await writeSyntheticDataset({ dir: join(temp.path, 'data'), size: SIZE, counts: { train: images, val: tfjsImages, test: 1 } });
  const dataset = await openDataset(join(temp.path, 'data'));
  const params = { size: SIZE, batch, device };

  // ONNX Runtime, bare: session.run on a preprocessed batch, nothing else.
  {
    const bytes = new Uint8Array(await (await import('node:fs/promises')).readFile(models.onnx));
    const runBytes = exposeOutput(decodeOnnx(bytes, models.onnx), bytes, 'features', models.onnx);
    const { session, device: used } = await createOnnxSession(runBytes, device, log);
    const ort = await loadOrt();
    const input = preprocessPixels(await dataset.readPixels('train', 0, batch), batch, SIZE, torch, 'NCHW');
    const tensor = new ort.Tensor('float32', input, [batch, 3, SIZE, SIZE]);
    await session.run({ input: tensor }, ['features']); // warm-up
    const rounds = Math.max(1, Math.round(images / batch));
    t = performance.now();
    for (let i = 0; i < rounds; i++) {
      const out = await session.run({ input: tensor }, ['features']);
      out.features!.dispose();
    }
    const rate = (rounds * batch) / ((performance.now() - t) / 1000);
    results.push({ name: 'onnx bare engine', unit: 'images/s', value: rate, params: { ...params, device: used, images: rounds * batch } });
    await session.release();
  }
  // ONNX Runtime, pipeline: extractFeatures over the split (reads, preprocessing, batches), cache off.
  const onnxBackbone = await loadBackbone(models.onnx, { device, featureLayer: 'features', preprocess: 'torch', log });
  await onnxBackbone.extract(await dataset.readPixels('train', 0, batch), batch); // warm-up
  const onnxRun = await extractFeatures({ dataset, split: 'train', backbone: onnxBackbone, batchSize: batch, cache: false, log });
  results.push({
    name: 'onnx pipeline (extractFeatures)',
    unit: 'images/s',
    value: images / onnxRun.seconds,
    params: { ...params, device: onnxBackbone.device, images },
  });
  const onnxVal = await onnxBackbone.extract(await dataset.readPixels('val', 0, Math.min(4, tfjsImages)), Math.min(4, tfjsImages));
  await onnxBackbone.dispose();

  if (!values['no-tfjs']) {
    const tfDevice = device === 'cpu' || device === 'auto' ? 'wasm' : device;
    // TF.js, bare: the layers model cut at 'features', predict on a ready tensor, in this thread.
    {
      const { tf, backend } = await loadTf(tfDevice, log);
      const runner = await openTfjsRunner(tf, models.tfjs, { featureLayer: 'features', preprocess: torch });
      const model = await tf.loadLayersModel((await import('@imgpipe/engines')).fileLoadHandler(tf.io, models.tfjs));
      const cut = tf.model({
        inputs: model.inputs,
        outputs: model.getLayer('features').output as import('@imgpipe/engines/tfjs-parts').SymbolicTensor,
      });
      const n = Math.min(batch, tfjsImages);
      const x = tf.tensor4d(preprocessPixels(await dataset.readPixels('val', 0, n), n, SIZE, torch, 'NHWC'), [n, SIZE, SIZE, 3]);
      const once = async () => {
        const y = cut.predict(x) as import('@imgpipe/engines/tfjs-parts').Tensor;
        await y.data();
        y.dispose();
      };
      await once(); // warm-up
      const rounds = Math.max(1, Math.round(tfjsImages / n));
      t = performance.now();
      for (let i = 0; i < rounds; i++) await once();
      const rate = (rounds * n) / ((performance.now() - t) / 1000);
      results.push({
        name: `tfjs bare engine (${backend}, this thread)`,
        unit: 'images/s',
        value: rate,
        params: { ...params, device: tfDevice, images: rounds * n },
      });
      x.dispose();
      model.dispose();
      runner.dispose();
    }
    // TF.js, pipeline: extractFeatures with 1 and 2 wasm workers (one in-process backend on GPUs).
    for (const workers of tfDevice === 'wasm' ? workerCounts : [1]) {
      const backbone = await loadBackbone(models.tfjs, { device: tfDevice, featureLayer: 'features', preprocess: 'torch', workers, log });
      const warm = Math.min(batch, tfjsImages);
      await Promise.all(Array.from({ length: backbone.concurrency }, async () => backbone.extract(await dataset.readPixels('val', 0, warm), warm)));
      const run = await extractFeatures({
        dataset,
        split: 'val',
        backbone,
        batchSize: Math.min(batch, Math.ceil(tfjsImages / workers)),
        cache: false,
        log,
      });
      results.push({
        name: `tfjs pipeline (extractFeatures, ${tfDevice}, ${workers > 1 ? `${workers} worker threads` : 'this thread'})`,
        unit: 'images/s',
        value: tfjsImages / run.seconds,
        params: { ...params, device: tfDevice, workers, images: tfjsImages },
      });
      if (workers === workerCounts[0]) {
        let max = 0;
        let scale = 0;
        for (let i = 0; i < onnxVal.length; i++) {
          max = Math.max(max, Math.abs(onnxVal[i]! - run.features[i]!));
          scale = Math.max(scale, Math.abs(onnxVal[i]!));
        }
        results.push({
          name: 'onnx vs tfjs features, max abs difference / max abs value',
          unit: 'ratio',
          value: max / scale,
          params: { images: onnxVal.length / 2048 },
        });
      }
      await backbone.dispose();
    }
  }
  const path = await writeBenchResults(device === 'cpu' ? 'engines' : `engines-${device}`, results);
  log.info(`wrote ${path}`);
} finally {
  await temp.remove();
}
