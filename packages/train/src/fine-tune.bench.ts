// --fine-tune speed: training images per second of a ResNet50 TF.js layers backbone (random weights, BatchNorm
// folded, test-utils' buildResnet50Backbones; nothing downloaded) with a 2048 -> 512 -> 2 head, end to end, one
// epoch on random pixels, plus the forward-only images/s of the val pass for comparison. On wasm the conv filter
// gradient is core's Conv2DBackpropFilter kernel (an XNNPACK convolution).
// Usage: IMGPIPE_BENCH_FILTER=fine-tune node scripts/run-bench.mjs [--images 16] [--val 8] [--size 224] [--batch 8]
//        [--device wasm] [--cpu-backend]   (--cpu-backend: the same on TF.js's JavaScript cpu backend)
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { fileSaveHandler, Head, loadBackbone, loadTf, parseDevice } from '@imgpipe/engines';
import { openDataset } from '@imgpipe/kit';
import { writeBenchResults, buildResnet50Backbones, makeTempDir, writeSyntheticDataset } from '@imgpipe/test-utils';
import { fineTune } from './fine-tune.js';

const { values } = parseArgs({
  options: {
    images: { type: 'string', default: '16' },
    val: { type: 'string', default: '8' },
    size: { type: 'string', default: '224' },
    batch: { type: 'string', default: '8' },
    device: { type: 'string', default: 'wasm' },
    'cpu-backend': { type: 'boolean', default: false },
  },
});
const [images, valCount, size, batch] = [values.images, values.val, values.size, values.batch].map(Number) as [number, number, number, number];
const device = parseDevice(values.device);
const temp = await makeTempDir('imgpipe-bench-fine-tune-');
try {
  const { tf, backend } = await loadTf(device);
  tf.env().set('IS_TEST', false); // test-utils mutes a banner with it, which also turns on tfjs's kernel leak checks
  const files = await buildResnet50Backbones({ dir: join(temp.path, 'resnet'), inputSize: size });
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
  const cpu = process.cpuUsage();
  const result = await fineTune({
    tf, dataset, backboneModelJson: files.tfjs, backboneInfo: info, headModelJson: join(temp.path, 'head', 'model.json'),
    mode: 'all', epochs: 1, lr: 1e-4, batchSize: batch, seed: 1, outDir: join(temp.path, 'out'),
  });
  const used = process.cpuUsage(cpu);
  const epoch = result.history[0]!;
  // The epoch's seconds include the val pass; the val pass alone is timed by its images through the forward model.
  const params = { images, val: valCount, size, batch, device, backend: values['cpu-backend'] ? 'cpu' : backend, backbone: 'resnet50 (random, BN folded)', mode: 'all' };
  await writeBenchResults(`train-fine-tune${values['cpu-backend'] ? '-cpu' : ''}`, [
    { name: 'fine-tune epoch seconds (train + val pass)', unit: 's', value: epoch.seconds, params },
    { name: 'fine-tune images/s (train + val images over the epoch)', unit: 'images/s', value: (images + valCount) / epoch.seconds, params },
    { name: 'fine-tune cpu seconds', unit: 's', value: (used.user + used.system) / 1e6, params },
  ]);
} finally {
  await temp.remove();
}
