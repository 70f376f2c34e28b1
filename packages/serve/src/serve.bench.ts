// Benchmark: requests/s and p50/p99 latency of POST /predict with one image per request, at several client
// concurrencies, with dynamic batching on and off, against the bare engine's batched images/s.
//
//   IMGPIPE_BENCH_FILTER=serve node scripts/run-bench.mjs [--backbone resnet50|tiny|model.onnx] [--size 224]
//     [--channels 16,32 (tiny)]
//     [--concurrency 1,8,32] [--seconds 6] [--max-batch 32] [--max-delay-ms 5] [--echo raw] [--device cpu]
//
// The load generator runs in a worker thread (keep-alive sockets, one per client, each client sends its next
// request when the previous answer arrives), so it does not share the server's event loop.
import { Worker } from 'node:worker_threads';
import { parseArgs } from 'node:util';
import sharp from 'sharp';
import { createLogger, silentLogger } from '@imgpipe/kit';
import { loadModel, parseDevice } from '@imgpipe/engines';
import { writeBenchResults, type BenchResult, buildResnet50Backbones, makeTempDir } from '@imgpipe/test-utils';
import { join } from 'node:path';
import { createModelLoader } from './model-loader.js';
import { runServe } from './serve.js';
import { buildTestModelDir } from './test-model.js';

const { values } = parseArgs({
  options: {
    size: { type: 'string', default: '224' },
    channels: { type: 'string', default: '16,32' },
    backbone: { type: 'string', default: 'resnet50' },
    concurrency: { type: 'string', default: '1,8,32' },
    seconds: { type: 'string', default: '6' },
    'max-batch': { type: 'string', default: '32' },
    'max-delay-ms': { type: 'string', default: '5' },
    echo: { type: 'string', default: 'raw' },
    device: { type: 'string', default: 'cpu' },
  },
  strict: false,
});
const size = Number(values.size);
const channels = String(values.channels).split(',').map(Number) as [number, number];
const concurrencies = String(values.concurrency).split(',').map(Number);
const seconds = Number(values.seconds);
const maxBatch = Number(values['max-batch']);
const maxDelayMs = Number(values['max-delay-ms']);
const echo = values.echo === 'annotated' ? 'annotated' : 'raw';
const device = parseDevice(values.device);
const log = createLogger({ name: 'serve.bench' });

const LOAD_GENERATOR = `
const { parentPort, workerData } = require('node:worker_threads');
const http = require('node:http');
const { url, body, concurrency, seconds } = workerData;
const agent = new http.Agent({ keepAlive: true, maxSockets: concurrency });
const target = new URL(url);
const latencies = [];
const statuses = {};
let stop = false;
function once() {
  return new Promise((resolve) => {
    const started = performance.now();
    const req = http.request({ host: target.hostname, port: target.port, path: '/predict', method: 'POST', agent,
      headers: { 'content-type': 'application/json', 'content-length': body.length } }, (res) => {
      res.resume();
      res.on('end', () => { latencies.push(performance.now() - started); statuses[res.statusCode] = (statuses[res.statusCode] || 0) + 1; resolve(); });
    });
    req.on('error', (e) => { statuses[e.code || 'error'] = (statuses[e.code || 'error'] || 0) + 1; resolve(); });
    req.end(body);
  });
}
async function client() { while (!stop) await once(); }
const began = performance.now();
setTimeout(() => { stop = true; }, seconds * 1000);
Promise.all(Array.from({ length: concurrency }, client)).then(() => {
  const elapsed = (performance.now() - began) / 1000;
  agent.destroy();
  parentPort.postMessage({ latencies, statuses, elapsed });
});
`;

function load(url: string, body: Buffer, concurrency: number, duration: number) {
  return new Promise<{ latencies: number[]; statuses: Record<string, number>; elapsed: number }>((resolve, reject) => {
    const worker = new Worker(LOAD_GENERATOR, { eval: true, workerData: { url, body, concurrency, seconds: duration } });
    worker.once('message', resolve);
    worker.once('error', reject);
  });
}

const percentile = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;

const temp = await makeTempDir('imgpipe-serve-bench-');
try {
  // resnet50: ResNet50 with random weights in ONNX (test-utils; nothing downloaded); tiny: a 2-conv net.
  const spec = String(values.backbone);
  const backbone =
    spec === 'resnet50'
      ? { backbone: (await buildResnet50Backbones({ dir: join(temp.path, 'resnet50'), inputSize: size })).onnx, featureLayer: 'features' }
      : spec === 'tiny'
        ? { channels }
        : { backbone: spec };
  const modelDir = await buildTestModelDir(temp.path, { size, ...backbone });
  const image = await sharp({ create: { width: size, height: size, channels: 3, background: { r: 120, g: 80, b: 200 } } })
    .composite([{ input: Buffer.from(`<svg width="${size}" height="${size}"><circle cx="${size / 2}" cy="${size / 2}" r="${size / 3}" fill="orange"/></svg>`) }])
    .jpeg({ quality: 90 })
    .toBuffer();
  const body = Buffer.from(JSON.stringify({ data: [{ path: 'bench.jpg', encoded: image.toString('base64') }] }));
  const results: BenchResult[] = [];
  const common = { size, backbone: spec === 'tiny' ? `tiny-conv ${channels.join('x')} (onnx)` : spec === 'resnet50' ? 'resnet50 random (onnx)' : spec, device, echo, image_bytes: image.length };

  // The bare engine: model.predict on batches of max-batch, pixels already decoded. Measured before and after
  // the served runs (the machine's load drifts; the ratios use the mean of the two).
  const pixels = new Uint8Array(maxBatch * size * size * 3).map((_, i) => (i * 7) % 256);
  const bareEngine = async (when: string) => {
    const model = await loadModel(modelDir, { device, log: silentLogger });
    await model.predict(pixels, maxBatch);
    let images = 0;
    const began = performance.now();
    while (performance.now() - began < seconds * 1000 || images < 3 * maxBatch) {
      await model.predict(pixels, maxBatch);
      images += maxBatch;
    }
    const rate = images / ((performance.now() - began) / 1000);
    await model.dispose();
    results.push({ name: `bare engine batched (${when})`, unit: 'images/s', value: rate, params: { ...common, batch: maxBatch } });
    log.info(`bare engine ${when}: ${rate.toFixed(1)} images/s at batch ${maxBatch}`);
    return rate;
  };
  const bareBefore = await bareEngine('before');
  const served: { name: string; rps: number; params: Record<string, unknown> }[] = [];

  for (const batching of [true, false]) {
    const server = await runServe({
      model: modelDir,
      host: '127.0.0.1',
      port: 0,
      maxBatch: batching ? maxBatch : 1,
      maxDelayMs: batching ? maxDelayMs : 0,
      maxQueue: 1024,
      maxBody: 32 * 1024 * 1024,
      maxPixels: 40_000_000,
      echo,
      jsonLogs: false,
      graceMs: 5000,
      load: createModelLoader({ device, aws: { endpoint: '' } as never, maxPixels: 40_000_000 }),
      stdout: { write: () => true } as unknown as NodeJS.WritableStream,
      stderr: process.stderr,
      log: silentLogger,
      quiet: true,
    });
    try {
      await load(server.url, body, 4, 1); // warm the route
      for (const concurrency of concurrencies) {
        const run = await load(server.url, body, concurrency, seconds);
        const sorted = run.latencies.sort((a, b) => a - b);
        const ok = run.statuses['200'] ?? 0;
        const rps = ok / run.elapsed;
        const params = { ...common, concurrency, batching, max_batch: batching ? maxBatch : 1, max_delay_ms: batching ? maxDelayMs : 0, statuses: run.statuses };
        results.push({ name: `requests/s c=${concurrency} batching=${batching ? 'on' : 'off'}`, unit: 'requests/s', value: rps, params });
        results.push({ name: `p50 latency c=${concurrency} batching=${batching ? 'on' : 'off'}`, unit: 'ms', value: percentile(sorted, 50), params: { concurrency, batching } });
        results.push({ name: `p99 latency c=${concurrency} batching=${batching ? 'on' : 'off'}`, unit: 'ms', value: percentile(sorted, 99), params: { concurrency, batching } });
        served.push({ name: `vs bare engine c=${concurrency} batching=${batching ? 'on' : 'off'}`, rps, params: { concurrency, batching } });
      }
    } finally {
      await server.close();
    }
  }
  const bare = (bareBefore + (await bareEngine('after'))) / 2;
  for (const { name, rps, params } of served) results.push({ name, unit: '%', value: (100 * rps) / bare, params: { ...params, bare_images_per_s: bare } });
  await writeBenchResults('serve', results);
} finally {
  await temp.remove();
}
