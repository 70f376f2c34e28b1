// model.onnx (the whole classifier on one ONNX Runtime session) against the two-part path (the backbone, then the
// TF.js head; preprocessing in JS) on the same model directory, through loadModel + predict, the call eval-model
// and serve make. Rounds alternate the two paths (A B, B A, ...) so that load from other processes on a shared
// machine falls on both alike; the figures are the medians over rounds of images/s and CPU-ms per image.
// Backbones: a tiny 2-conv ONNX net (the path's own overhead dominates), ResNet50 (random weights, ONNX) and
// MobileNet v1 0.5 (random weights, TF.js layers: --device wasm keeps it on TF.js wasm workers in the two-part path,
// --device cpu converts it to ONNX), all at 224x224.
// Usage: IMGPIPE_BENCH_FILTER=whole-model node scripts/run-bench.mjs [--rounds 5] [--batch 32] [--batches 3]
//          [--cases tiny,resnet50,mobilenet-wasm,mobilenet-cpu]
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { buildLayersHead, loadBackbone, loadModel, loadTf, saveModelDir, type Device, type LoadBackboneOptions } from '@imgpipe/engines';
import { createRng, MODEL_FORMAT, silentLogger } from '@imgpipe/kit';
import { buildTinyConvBackbone, makeTempDir, writeBenchResults, type BenchResult } from '@imgpipe/test-utils';
import { buildMobileNetV1 } from '@imgpipe/engines/test-mobilenet-model';
import { buildResnet50Backbones } from '@imgpipe/engines/test-resnet50-model';

const { values } = parseArgs({
  options: {
    rounds: { type: 'string', default: '5' },
    batch: { type: 'string', default: '32' },
    batches: { type: 'string', default: '3' },
    cases: { type: 'string', default: 'tiny,resnet50,mobilenet-wasm,mobilenet-cpu' },
  },
});
const rounds = Number(values.rounds);
const batch = Number(values.batch);
const batches = Number(values.batches);
const SIZE = 224;
const results: BenchResult[] = [];
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function modelDir(dir: string, spec: string, options: LoadBackboneOptions): Promise<string> {
  const { tf } = await loadTf('wasm');
  const backbone = await loadBackbone(spec, { ...options, inputSize: SIZE, log: silentLogger });
  const rng = createRng(1);
  const dim = backbone.info.feature_dim;
  const fill = (n: number) => Float32Array.from({ length: n }, () => (rng() - 0.5) / Math.sqrt(dim));
  const weights = {
    w1: tf.tensor2d(fill(dim * 512), [dim, 512]),
    b1: tf.tensor1d(fill(512)),
    w2: tf.tensor2d(fill(1024), [512, 2]),
    b2: tf.tensor1d(fill(2)),
  };
  const head = buildLayersHead(tf, { inputDim: dim, classes: 2, layer_size: 512, dropout: 0.5 }, weights);
  tf.dispose(Object.values(weights));
  await saveModelDir(dir, {
    card: {
      format: MODEL_FORMAT,
      labels: ['cat', 'dog'],
      input: { size: SIZE, channels: 3, fit: 'fill' },
      preprocess: backbone.info.preprocess,
      backbone: { ...backbone.info, path: '' },
      head: { path: 'head/model.json', layer_size: 512, dropout: 0.5, lr: 0.001, epochs: 1, batch_size: 32 },
      metrics: {},
      dataset: { manifest_sha256: 'bench' },
      created: new Date().toISOString(),
      versions: {},
    },
    backboneFiles: backbone.files,
    head,
  });
  head.dispose();
  await backbone.dispose();
  return dir;
}

/** images/s and CPU-ms per image of `batches` predict calls of `batch` images, after one warm-up call. */
async function measure(dir: string, device: Device, wholeModel: boolean, pixels: Uint8Array): Promise<{ rate: number; cpuMs: number }> {
  const model = await loadModel(dir, { device, wholeModel, log: silentLogger });
  try {
    await model.predict(pixels, batch);
    const cpu = process.cpuUsage();
    const began = performance.now();
    for (let i = 0; i < batches; i++) await model.predict(pixels, batch);
    const used = process.cpuUsage(cpu);
    const images = batch * batches;
    return { rate: images / ((performance.now() - began) / 1000), cpuMs: (used.user + used.system) / 1000 / images };
  } finally {
    await model.dispose();
  }
}

const temp = await makeTempDir('imgpipe-bench-whole-model-');
try {
  const pixels = new Uint8Array(batch * SIZE * SIZE * 3).map((_, i) => (i * 7 + (i % 3) * 50) % 256);
  for (const name of String(values.cases).split(',')) {
    let dir: string;
    let device: Device = 'cpu';
    if (name === 'tiny') {
      const tiny = await buildTinyConvBackbone({ dir: join(temp.path, 'tiny'), inputSize: SIZE, format: 'onnx', channels: [16, 32] });
      dir = await modelDir(join(temp.path, 'tiny-model'), tiny.path, { device: 'cpu', featureLayer: tiny.featureLayer, preprocess: 'torch' });
    } else if (name === 'resnet50') {
      const resnet = await buildResnet50Backbones({ dir: join(temp.path, 'resnet50'), inputSize: SIZE });
      dir = await modelDir(join(temp.path, 'resnet50-model'), resnet.onnx, { device: 'cpu', featureLayer: resnet.featureLayer, preprocess: 'torch' });
    } else {
      device = name === 'mobilenet-wasm' ? 'wasm' : 'cpu';
      const mobilenet = await buildMobileNetV1({ dir: join(temp.path, name), layout: 'keras', alpha: 0.5, inputSize: SIZE });
      dir = await modelDir(join(temp.path, `${name}-model`), mobilenet.path, {
        device,
        featureLayer: mobilenet.featureLayer,
        preprocess: 'tf',
        cacheDir: join(temp.path, 'cache'),
      });
    }
    const runs = { 'model.onnx': [] as { rate: number; cpuMs: number }[], 'two parts': [] as { rate: number; cpuMs: number }[] };
    for (let round = 0; round < rounds; round++) {
      const order = round % 2 === 0 ? (['model.onnx', 'two parts'] as const) : (['two parts', 'model.onnx'] as const);
      for (const kind of order) runs[kind].push(await measure(dir, device, kind === 'model.onnx', pixels));
    }
    for (const [kind, list] of Object.entries(runs)) {
      const params = { backbone: name, device, size: SIZE, batch, batches, rounds, head: '512 hidden, 2 classes' };
      results.push({
        name: `${name} ${kind}: predict`,
        unit: 'images/s',
        value: median(list.map((r) => r.rate)),
        params: { ...params, all: list.map((r) => Number(r.rate.toFixed(1))) },
      });
      results.push({
        name: `${name} ${kind}: CPU per image`,
        unit: 'ms',
        value: median(list.map((r) => r.cpuMs)),
        params: { ...params, all: list.map((r) => Number(r.cpuMs.toFixed(2))) },
      });
    }
  }
} finally {
  await temp.remove();
}
await writeBenchResults('whole-model', results);
