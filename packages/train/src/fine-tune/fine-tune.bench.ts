// --fine-tune speed: training images per second of a TF.js layers backbone with random weights (nothing
// downloaded): ResNet50 (BatchNorm folded, test-utils' buildResnet50Backbones) or MobileNet v1 (BatchNorm layers,
// depthwise convs, buildMobileNetV1 with --alpha), with a features -> 512 -> 2 head, end to end, one epoch on random
// pixels. On wasm the conv gradients are engines' kernels (wasm-grad-kernels, wasm-depthwise-grad-kernels, ...).
// Reported: training images/s (the epoch's training batches only), the same per CPU-second of this process (steadier
// on a shared machine), and the epoch including its val pass.
// On wasm, once per --workers count (worker threads sharing each batch; 1: the main thread), in the same run.
// Usage: IMGPIPE_BENCH_FILTER=fine-tune node scripts/run-bench.mjs [--backbone resnet50|mobilenet] [--alpha 0.5]
//        [--mode all|bn] [--images 16] [--val 8] [--size 224] [--batch 8] [--device wasm] [--workers 1,2]
//        [--cpu-backend]   (the same on TF.js's JavaScript cpu backend: what wasm fell back to before its depthwise
//                           gradient kernels; give it few --images, a batch takes minutes)
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { fileSaveHandler, Head, loadBackbone, loadTf, parseDevice } from '@imgpipe/engines';
import { openDataset } from '@imgpipe/kit';
import { writeBenchResults, makeTempDir, writeSyntheticDataset } from '@imgpipe/test-utils';
import { buildMobileNetV1 } from '@imgpipe/engines/test-mobilenet-model';
import { buildResnet50Backbones } from '@imgpipe/engines/test-resnet50-model';
import { fineTune, type FineTuneMode } from './fine-tune.js';

const { values } = parseArgs({
  options: {
    images: { type: 'string', default: '16' },
    val: { type: 'string', default: '8' },
    size: { type: 'string', default: '224' },
    batch: { type: 'string', default: '8' },
    device: { type: 'string', default: 'wasm' },
    'cpu-backend': { type: 'boolean', default: false },
    backbone: { type: 'string', default: 'resnet50' },
    alpha: { type: 'string', default: '0.5' },
    mode: { type: 'string', default: 'all' },
    workers: { type: 'string', default: '1,2' },
  },
});
const mobilenet = values.backbone === 'mobilenet';
const mode = values.mode as FineTuneMode;
const [images, valCount, size, batch] = [values.images, values.val, values.size, values.batch].map(Number) as [number, number, number, number];
const device = parseDevice(values.device);
const temp = await makeTempDir('imgpipe-bench-fine-tune-');
try {
  const { tf, backend } = await loadTf(device);
  tf.env().set('IS_TEST', false); // test-utils mutes a banner with it, which also turns on tfjs's kernel leak checks
  const files = mobilenet
    ? {
        tfjs: (await buildMobileNetV1({ dir: join(temp.path, 'mobilenet'), alpha: Number(values.alpha), inputSize: size })).path,
        featureLayer: 'features',
      }
    : await buildResnet50Backbones({ dir: join(temp.path, 'resnet'), inputSize: size });
  await writeSyntheticDataset({ dir: join(temp.path, 'data'), size, counts: { train: images, val: valCount, test: 0 } });
  const dataset = await openDataset(join(temp.path, 'data'));
  const backbone = await loadBackbone(files.tfjs, { device, featureLayer: files.featureLayer, preprocess: 'torch', workers: 1 });
  const info = backbone.info;
  await backbone.dispose();
  const head = new Head(tf, { inputDim: info.feature_dim, classes: 2, layer_size: 512, dropout: 0.5, lr: 0.001, batch_size: batch, seed: 1 });
  const headModel = head.toLayersModel();
  await headModel.save(fileSaveHandler(join(temp.path, 'head')));
  headModel.dispose();
  head.dispose();
  if (values['cpu-backend']) await tf.setBackend('cpu');
  const name = mobilenet ? `mobilenet v1 ${values.alpha} (random)` : 'resnet50 (random, BN folded)';
  const suite = `train-fine-tune${mobilenet ? `-mobilenet-${values.alpha}-${mode}` : ''}${values['cpu-backend'] ? '-cpu' : ''}`;
  const results = [];
  for (const workers of values.workers.split(',').map(Number)) {
    // Training batches only: from the epoch progress's first update (the first batch done: warm-up) to its end.
    let first: { at: number; cpu: NodeJS.CpuUsage; done: number } | undefined;
    let last: { at: number; cpu: NodeJS.CpuUsage; done: number } | undefined;
    const result = await fineTune({
      tf,
      dataset,
      backboneModelJson: files.tfjs,
      backboneInfo: info,
      headModelJson: join(temp.path, 'head', 'model.json'),
      mode,
      epochs: 1,
      lr: 1e-4,
      batchSize: batch,
      seed: 1,
      outDir: join(temp.path, `out-${workers}`),
      workers,
      onProgress: (event) => {
        if (event.status !== 'progress') return;
        const now = { at: performance.now(), cpu: process.cpuUsage(), done: event.done };
        if (first) last = now;
        else first = now;
      },
    });
    if (!first || !last) throw new Error('--images must cover at least two batches (the first is warm-up)');
    const seconds = (last.at - first.at) / 1000;
    const cpuSeconds = (last.cpu.user + last.cpu.system - first.cpu.user - first.cpu.system) / 1e6;
    const trained = last.done - first.done;
    const epoch = result.history[0]!;
    const params = {
      images,
      val: valCount,
      size,
      batch,
      device,
      backend: values['cpu-backend'] ? 'cpu' : backend,
      backbone: name,
      mode,
      workers: result.workers,
    };
    process.stderr.write(
      `fine-tune bench: ${result.workers} worker(s): ${(trained / seconds).toFixed(2)} training images/s, ${(trained / cpuSeconds).toFixed(2)} per CPU-second\n`,
    );
    results.push(
      { name: 'fine-tune training images/s (batches after the first)', unit: 'images/s', value: trained / seconds, params },
      { name: 'fine-tune training images per CPU-second of the process', unit: 'images/cpu-s', value: trained / cpuSeconds, params },
      { name: 'fine-tune epoch seconds (train + val pass)', unit: 's', value: epoch.seconds, params },
    );
  }
  await writeBenchResults(suite, results);
} finally {
  await temp.remove();
}
