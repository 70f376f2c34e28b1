// Head training speed on cached features: seconds per epoch of the seed's head (dim -> layer_size -> 2, dropout
// 0.5, Adam, batch 32) on `count` random feature vectors, with imgpipe's hand-written backward pass, and (with
// --fit) the same head through tf model.fit for comparison. Reference (the issue): PyTorch 3.0 s/epoch for
// 20,000 x 2048 at layer size 512 on a 2-core CPU; TF.js wasm model.fit 46 s.
// Usage: IMGPIPE_BENCH_FILTER=head-epoch node scripts/run-bench.mjs [--count 20000] [--dim 2048]
//        [--layer-sizes 256,512,1024] [--batch 32] [--epochs 1] [--device wasm] [--fit] [--fit-count 2000]
import { parseArgs } from 'node:util';
import { createFeatureSet, Head, loadTf, parseDevice } from '@imgpipe/engines';
import { createRng } from '@imgpipe/kit';
import { writeBenchResults, type BenchResult } from '@imgpipe/test-utils';

const { values } = parseArgs({
  options: {
    count: { type: 'string', default: '20000' },
    dim: { type: 'string', default: '2048' },
    'layer-sizes': { type: 'string', default: '256,512,1024' },
    batch: { type: 'string', default: '32' },
    epochs: { type: 'string', default: '1' },
    device: { type: 'string', default: 'wasm' },
    fit: { type: 'boolean', default: false },
    'fit-count': { type: 'string', default: '2000' },
  },
});
const count = Number(values.count);
const dim = Number(values.dim);
const layerSizes = values['layer-sizes']!.split(',').map(Number);
const batch = Number(values.batch);
const epochs = Number(values.epochs);
const { tf, device, backend } = await loadTf(parseDevice(values.device));

const rng = createRng(1);
const labels = Int32Array.from({ length: count }, (_, i) => i % 2);
const features = new Float32Array(count * dim);
for (let i = 0; i < count; i++) for (let d = 0; d < dim; d++) features[i * dim + d] = rng() * (d % 7 === labels[i] ? 1.2 : 1);
const set = createFeatureSet(features, labels, dim, 2);
const results: BenchResult[] = [];
const cpuSeconds = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
};

for (const layerSize of layerSizes) {
  const head = new Head(tf, { inputDim: dim, classes: 2, layer_size: layerSize, dropout: 0.5, lr: 0.001, batch_size: batch, seed: 1 });
  const times: number[] = [];
  const cpuTimes: number[] = [];
  for (let e = 0; e < epochs; e++) {
    const t = performance.now();
    const c = cpuSeconds();
    await head.trainEpoch(set);
    times.push((performance.now() - t) / 1000);
    cpuTimes.push(cpuSeconds() - c);
  }
  head.dispose();
  const params = { count, dim, layer_size: layerSize, batch, device, backend, method: 'explicit backward' };
  results.push({ name: `epoch seconds, layer ${layerSize}`, unit: 's', value: Math.min(...times), params });
  // CPU time of this (single-threaded wasm) process: less sensitive to other load on a shared machine.
  results.push({ name: `epoch cpu seconds, layer ${layerSize}`, unit: 's', value: Math.min(...cpuTimes), params });
}

if (values.fit) {
  // model.fit is slow on wasm: time it on fewer rows and scale to `count`.
  const fitCount = Math.min(count, Number(values['fit-count']));
  for (const layerSize of layerSizes) {
    const model = tf.sequential({
      layers: [
        tf.layers.dense({ inputShape: [dim], units: layerSize, activation: 'relu' }),
        tf.layers.dropout({ rate: 0.5 }),
        tf.layers.dense({ units: 2, activation: 'softmax' }),
      ],
    });
    model.compile({ optimizer: tf.train.adam(0.001), loss: 'categoricalCrossentropy', metrics: ['accuracy'] });
    const x = tf.tensor2d(features.subarray(0, fitCount * dim), [fitCount, dim]);
    const y = tf.tidy(() => tf.oneHot(tf.tensor1d(labels.subarray(0, fitCount), 'int32'), 2));
    const t = performance.now();
    await model.fit(x, y, { batchSize: batch, epochs: 1, shuffle: true, verbose: 0 });
    const seconds = ((performance.now() - t) / 1000) * (count / fitCount);
    tf.dispose([x, y]);
    model.dispose();
    results.push({
      name: `epoch seconds with model.fit, layer ${layerSize}`,
      unit: 's',
      value: seconds,
      params: { count, measured_on: fitCount, dim, layer_size: layerSize, batch, device, backend, method: 'model.fit (scaled)' },
    });
  }
}
await writeBenchResults('train-head-epoch', results);
