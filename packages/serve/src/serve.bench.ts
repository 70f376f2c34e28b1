// Benchmark: requests/s and p50/p99 latency of POST /predict in the seed's format with one photo-sized JPEG per
// request (photo-like: the photo nearest --photo among test-utils' buildPhotoSet, made from Debian's real photographs;
// needs python3-skimage), at several client concurrencies, for each echo mode (annotated, the
// default, and raw) and with dynamic batching on (and off, if asked), against the bare engine's batched images/s
// measured in the same run.
//
//   IMGPIPE_BENCH_FILTER=serve node scripts/run-bench.mjs [--backbone resnet50|tiny|model.onnx] [--size 224]
//     [--channels 16,32 (tiny)] [--photo 500x375] [--concurrency 1,8,32] [--seconds 6] [--max-batch 32]
//     [--max-delay-ms 5] [--echo annotated,raw] [--batching on|on,off] [--device cpu] [--model onnx,parts] [--rounds 1]
//
// --rounds: serve is started that many times, the bare engine measured before, between and after them, and for each
// concurrency the round with the median CPU per request is reported (every round's figures are in its params): with
// ResNet50 the engine's CPU per image differs between processes by more than serve's own work does.
//
// --model: how the model directory is served: `onnx`, model.onnx on one ONNX Runtime session (the default where the
// directory has it), or `parts`, a directory without model.onnx (the backbone, then the TF.js head), as before.
//
// serve runs as users run it, its bin (dist/: `make bench` builds first) in a process of its own, and the load
// generator is another (keep-alive sockets, one per client, each client sends its next request when the previous
// answer arrives). The CPU time of serve's process (/proc/<pid>/stat) per answered request is reported beside
// requests/s, since it holds on a machine whose other load makes wall-clock rates drift. serve's own
// CPU per request (that minus the bare engine's CPU per image, at --max-batch and again at the batch size serve ran:
// one image per batch at one client) is compared with the seed's per-request work done by PIL in Python on the same
// body (Debian's python3 with python3-pil), measured in the same run.
import { execFile, spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { readJpegHeader } from '@imgpipe/images/jpeg-header';
import { createLogger, silentLogger } from '@imgpipe/kit';
import { loadModel, parseDevice } from '@imgpipe/engines';
import { buildPhotoSet, writeBenchResults, type BenchResult, makeTempDir } from '@imgpipe/test-utils';
import { buildResnet50Backbones } from '@imgpipe/engines/test-resnet50-model';
import { join } from 'node:path';
import { buildTestModelDir } from '@imgpipe/engines/test-model';

const { values } = parseArgs({
  options: {
    size: { type: 'string', default: '224' },
    channels: { type: 'string', default: '16,32' },
    backbone: { type: 'string', default: 'resnet50' },
    concurrency: { type: 'string', default: '1,8,32' },
    seconds: { type: 'string', default: '6' },
    'max-batch': { type: 'string', default: '32' },
    'max-delay-ms': { type: 'string', default: '5' },
    echo: { type: 'string', default: 'annotated,raw' },
    photo: { type: 'string', default: '500x375' },
    batching: { type: 'string', default: 'on' },
    device: { type: 'string', default: 'cpu' },
    model: { type: 'string', default: 'onnx' },
    rounds: { type: 'string', default: '1' },
  },
  strict: false,
});
const size = Number(values.size);
const channels = String(values.channels).split(',').map(Number) as [number, number];
const concurrencies = String(values.concurrency).split(',').map(Number);
const seconds = Number(values.seconds);
const maxBatch = Number(values['max-batch']);
const maxDelayMs = Number(values['max-delay-ms']);
const echoModes = String(values.echo)
  .split(',')
  .map((mode) => (mode === 'annotated' ? 'annotated' : 'raw'));
const [photoWidth, photoHeight] = String(values.photo).split('x').map(Number) as [number, number];
const batchingModes = String(values.batching)
  .split(',')
  .map((mode) => mode === 'on');
const device = parseDevice(values.device);
const modelModes = String(values.model)
  .split(',')
  .map((mode) => (mode === 'parts' ? 'parts' : 'onnx'));
const rounds = Math.max(1, Number(values.rounds));
const log = createLogger({ name: 'serve.bench' });

const LOAD_GENERATOR = `
const http = require('node:http');
const { url, bodyFile, concurrency, seconds } = JSON.parse(process.argv[1]);
const body = require('node:fs').readFileSync(bodyFile);
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
  const cpu = process.cpuUsage();
  process.stdout.write(JSON.stringify({ latencies, statuses, elapsed, clientCpuSeconds: (cpu.user + cpu.system) / 1e6 }));
});
`;

const SERVE_BIN = fileURLToPath(new URL('../bin/serve.js', import.meta.url));

/** serve's bin in a process of its own, once it has printed its URL; `cpuSeconds` is that process's CPU time so far. */
async function startServe(args: string[]): Promise<{ url: string; cpuSeconds(): number; close(): Promise<void> }> {
  if (!existsSync(fileURLToPath(new URL('../dist/cli.js', import.meta.url)))) throw new Error('serve is not built: run pnpm run build first');
  const child = spawn(process.execPath, [SERVE_BIN, ...args, '--host', '127.0.0.1', '--port', '0', '--quiet'], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const url = await new Promise<string>((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`serve exited with code ${code} before it was ready`)));
    createInterface({ input: child.stdout! }).on('line', (line) => {
      const pointer = JSON.parse(line) as { kind?: string; url?: string };
      if (pointer.kind === 'server' && pointer.url) resolve(pointer.url);
    });
  });
  // utime and stime, in clock ticks (100 per second on Linux), after the command's name, which may hold spaces.
  const cpuSeconds = () => {
    const stat = readFileSync(`/proc/${child.pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / 100;
  };
  return {
    url,
    cpuSeconds,
    close: async () => {
      child.kill('SIGTERM');
      await exited;
    },
  };
}

async function load(url: string, bodyFile: string, concurrency: number, duration: number, serverCpuSeconds: () => number) {
  const cpu = serverCpuSeconds();
  const { stdout } = await new Promise<{ stdout: string }>((resolve, reject) => {
    execFile(
      process.execPath,
      ['-e', LOAD_GENERATOR, JSON.stringify({ url, bodyFile, concurrency, seconds: duration })],
      { maxBuffer: 64 << 20 },
      (error, out) => (error ? reject(error) : resolve({ stdout: out })),
    );
  });
  const used = serverCpuSeconds() - cpu;
  const run = JSON.parse(stdout) as { latencies: number[]; statuses: Record<string, number>; elapsed: number; clientCpuSeconds: number };
  return { ...run, cpuSeconds: used };
}

/** Batches run and images in them so far, from the server's own /metrics. */
async function batchTotals(url: string): Promise<{ batches: number; images: number }> {
  const text = await (await fetch(new URL('/metrics', url))).text();
  const value = (name: string) => Number(/^(\S+) (\S+)$/m.exec(text.split('\n').find((line) => line.startsWith(`${name} `)) ?? '')?.[2] ?? 0);
  return { batches: value('imgpipe_serve_batch_size_count'), images: value('imgpipe_serve_batch_size_sum') };
}

/**
 * The anchor: the seed's per-request work in Python with PIL on the same request body, one thread, CPU time of the
 * loop alone: JSON and base64 decode, PIL decode + resize to the model size (the input), a caption banner drawn on
 * the picture, JPEG quality 80, base64 and the JSON answer. undefined without python3-pil.
 */
function pilRequestCpuMs(bodyFile: string, size: number, python = '/usr/bin/python3'): number | undefined {
  const script = `
import base64, io, json, sys, time
from PIL import Image, ImageDraw
raw = open(sys.argv[1], 'rb').read()
best = None
for run in range(3):
    started = time.process_time()
    for _ in range(200):
        request = json.loads(raw)
        image = Image.open(io.BytesIO(base64.b64decode(request['data'][0]['encoded']))).convert('RGB')
        model_input = image.resize((${size}, ${size}), Image.BILINEAR).tobytes()
        draw = ImageDraw.Draw(image)
        draw.rectangle([0, 0, image.width, int(image.height * 0.12)], fill=(0, 0, 0))
        draw.text((4, 4), 'dog 98.1%', fill=(255, 255, 255))
        out = io.BytesIO()
        image.save(out, 'JPEG', quality=80)
        answer = json.dumps({'predictions': [{'label': 'dog', 'probability': 0.981, 'image': base64.b64encode(out.getvalue()).decode()}]})
    elapsed = (time.process_time() - started) / 200 * 1000
    best = elapsed if best is None else min(best, elapsed)
print(best)
`;
  const run = spawnSync(python, ['-c', script, bodyFile], { encoding: 'utf8' });
  return run.status === 0 ? Number(run.stdout.trim()) : undefined;
}

/** One served run at one concurrency: what the load generator and serve's /proc and /metrics gave. */
interface ServedRun {
  rps: number;
  cpuMs: number;
  clientCpuMs: number;
  meanBatch: number;
  /** Sorted. */
  latencies: number[];
  statuses: Record<string, number>;
}

const mean = (values: number[]) => values.reduce((sum, value) => sum + value, 0) / values.length;
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
  const results: BenchResult[] = [];
  for (const modelMode of modelModes) {
    const suffix = modelModes.length > 1 ? ` [${modelMode === 'onnx' ? 'model.onnx' : 'two parts'}]` : '';
    const modelDir = await buildTestModelDir(join(temp.path, modelMode), { size, ...backbone, wholeModel: modelMode === 'onnx' });
    // A photo-like JPEG of the size people send (not a thumbnail): of 64 from real photographs, the one nearest --photo.
    const photos = await Promise.all(
      (await buildPhotoSet({ dir: join(tmpdir(), 'imgpipe-bench-photos-64'), count: 64 })).map((path) => readFile(path)),
    );
    const distance = (jpeg: Buffer) => {
      const header = readJpegHeader(jpeg);
      return header ? Math.abs(header.width - photoWidth) + Math.abs(header.height - photoHeight) + (header.orientation === 1 ? 0 : 1e6) : Infinity;
    };
    const image = photos.reduce((best, jpeg) => (distance(jpeg) < distance(best) ? jpeg : best));
    const chosen = readJpegHeader(image)!;
    const body = join(temp.path, 'body.json');
    await writeFile(body, JSON.stringify({ data: [{ path: 'bench.jpg', encoded: image.toString('base64') }] }));
    const common = {
      model: modelMode === 'onnx' ? 'model.onnx' : 'backbone + TF.js head',
      size,
      backbone: spec === 'tiny' ? `tiny-conv ${channels.join('x')} (onnx)` : spec === 'resnet50' ? 'resnet50 random (onnx)' : spec,
      device,
      photo: `${chosen.width}x${chosen.height} photo-like`,
      image_bytes: image.length,
    };

    // The bare engine: model.predict on batches of max-batch, pixels already decoded. Measured before and after
    // the served runs (the machine's load drifts; the ratios use the mean of the two).
    const pixels = new Uint8Array(maxBatch * size * size * 3).map((_, i) => (i * 7) % 256);
    const bareCpuMs: number[] = [];
    const bareRun = async (batch: number) => {
      const model = await loadModel(modelDir, { device, log: silentLogger });
      const input = pixels.subarray(0, batch * size * size * 3);
      await model.predict(input, batch);
      let images = 0;
      const cpu = process.cpuUsage();
      const began = performance.now();
      while (performance.now() - began < seconds * 1000 || images < 3 * batch) {
        await model.predict(input, batch);
        images += batch;
      }
      const rate = images / ((performance.now() - began) / 1000);
      const used = process.cpuUsage(cpu);
      await model.dispose();
      return { rate, cpuMs: (used.user + used.system) / 1000 / images };
    };
    const bareEngine = async (when: string) => {
      const { rate, cpuMs } = await bareRun(maxBatch);
      results.push({ name: `bare engine batched (${when})${suffix}`, unit: 'images/s', value: rate, params: { ...common, batch: maxBatch } });
      results.push({ name: `bare engine CPU per image (${when})${suffix}`, unit: 'ms', value: cpuMs, params: { ...common, batch: maxBatch } });
      log.info(`${modelMode}: bare engine ${when}: ${rate.toFixed(1)} images/s at batch ${maxBatch}, ${cpuMs.toFixed(1)} CPU-ms per image`);
      bareCpuMs.push(cpuMs);
      return rate;
    };
    const bareRates = [await bareEngine('before')];
    const served: { name: string; rps: number; cpuMs: number; meanBatch: number; params: Record<string, unknown> }[] = [];

    for (const echo of echoModes)
      for (const batching of batchingModes) {
        /** Per concurrency, one run per round: each round is a serve process of its own. */
        const runs = new Map<number, ServedRun[]>(concurrencies.map((concurrency) => [concurrency, []]));
        for (let round = 1; round <= rounds; round++) {
          if (round > 1) bareRates.push(await bareEngine(`between rounds ${round - 1} and ${round}`));
          const server = await startServe([
            ...['--model', modelDir, '--device', String(values.device), '--echo', echo],
            ...['--max-batch', String(batching ? maxBatch : 1), '--max-delay-ms', String(batching ? maxDelayMs : 0)],
            ...['--max-queue', '1024', '--max-body', '32mb', '--max-pixels', '40000000'],
          ]);
          try {
            // Steady state, as a server that has run a while: every batch size seen once (ONNX Runtime plans memory
            // per input shape on first sight), at the largest concurrency for a few seconds.
            await load(server.url, body, Math.max(...concurrencies), 4, server.cpuSeconds);
            for (const concurrency of concurrencies) {
              const before = await batchTotals(server.url);
              const run = await load(server.url, body, concurrency, seconds, server.cpuSeconds);
              const after = await batchTotals(server.url);
              const ok = run.statuses['200'] ?? 0;
              const servedRun: ServedRun = {
                rps: ok / run.elapsed,
                cpuMs: (1000 * run.cpuSeconds) / Math.max(1, ok),
                clientCpuMs: (1000 * run.clientCpuSeconds) / Math.max(1, ok),
                meanBatch: (after.images - before.images) / Math.max(1, after.batches - before.batches),
                latencies: run.latencies.sort((a, b) => a - b),
                statuses: run.statuses,
              };
              runs.get(concurrency)!.push(servedRun);
              log.info(
                `echo=${echo} c=${concurrency}${rounds > 1 ? ` round ${round}` : ''}: ${servedRun.rps.toFixed(1)} requests/s, p50 ${percentile(servedRun.latencies, 50).toFixed(0)} ms, ${servedRun.cpuMs.toFixed(1)} CPU-ms per request (load generator ${servedRun.clientCpuMs.toFixed(1)}), mean batch ${servedRun.meanBatch.toFixed(1)}`,
              );
            }
          } finally {
            await server.close();
          }
        }
        for (const concurrency of concurrencies) {
          // The round with the median CPU per request stands for the concurrency; every round's figures are in params.
          const all = runs.get(concurrency)!;
          const chosen = [...all].sort((a, b) => a.cpuMs - b.cpuMs)[Math.floor((all.length - 1) / 2)]!;
          const params = {
            ...common,
            echo,
            concurrency,
            batching,
            mean_batch: chosen.meanBatch,
            max_batch: batching ? maxBatch : 1,
            max_delay_ms: batching ? maxDelayMs : 0,
            statuses: chosen.statuses,
            ...(rounds > 1 ? { rounds, cpu_ms_per_round: all.map((run) => run.cpuMs), requests_per_s_per_round: all.map((run) => run.rps) } : {}),
          };
          const tag = `echo=${echo} c=${concurrency} batching=${batching ? 'on' : 'off'}${suffix}`;
          const short = { echo, concurrency, batching };
          results.push({ name: `requests/s ${tag}`, unit: 'requests/s', value: chosen.rps, params });
          results.push({ name: `CPU per request ${tag}`, unit: 'ms', value: chosen.cpuMs, params: short });
          // The load generator shares the machine's cores: its CPU per request is what the server could not use.
          results.push({ name: `load generator CPU per request ${tag}`, unit: 'ms', value: chosen.clientCpuMs, params: short });
          results.push({ name: `p50 latency ${tag}`, unit: 'ms', value: percentile(chosen.latencies, 50), params: short });
          results.push({ name: `p99 latency ${tag}`, unit: 'ms', value: percentile(chosen.latencies, 99), params: short });
          served.push({ name: `vs bare engine ${tag}`, rps: chosen.rps, cpuMs: chosen.cpuMs, meanBatch: chosen.meanBatch, params: short });
        }
      }
    bareRates.push(await bareEngine('after'));
    const bare = mean(bareRates);
    const bareCpu = mean(bareCpuMs);
    const pilMs = pilRequestCpuMs(body, size);
    if (pilMs !== undefined)
      results.push({
        name: `PIL per-request work (decode, resize, caption, JPEG q80, base64, JSON)${suffix}`,
        unit: 'cpu-ms',
        value: pilMs,
        params: common,
      });
    // The engine's CPU per image depends on the batch size: at one client every batch is one image. Beside the
    // figures against --max-batch, serve's own CPU against the bare engine at the batch size serve actually ran.
    const bareAtBatch = new Map<number, number>();
    for (const { meanBatch } of served) {
      const batch = Math.max(1, Math.round(meanBatch));
      if (bareAtBatch.has(batch) || batch === maxBatch) continue;
      const { cpuMs } = await bareRun(batch);
      bareAtBatch.set(batch, cpuMs);
      results.push({ name: `bare engine CPU per image at batch ${batch}${suffix}`, unit: 'ms', value: cpuMs, params: { ...common, batch } });
      log.info(`${modelMode}: bare engine at batch ${batch}: ${cpuMs.toFixed(1)} CPU-ms per image`);
    }
    for (const { name, rps, cpuMs, meanBatch, params } of served) {
      results.push({ name, unit: '%', value: (100 * rps) / bare, params: { ...params, bare_images_per_s: bare } });
      // The same ratio from CPU time: what the served rate would be against the bare one were this process alone.
      results.push({ name: `${name} (CPU time)`, unit: '%', value: (100 * bareCpu) / cpuMs, params: { ...params, bare_cpu_ms_per_image: bareCpu } });
      // serve's own work per request: its CPU per request beyond the bare engine's per image (batch --max-batch).
      const own = cpuMs - bareCpu;
      results.push({
        name: `serve's own CPU per request ${name.slice('vs bare engine '.length)}`,
        unit: 'cpu-ms',
        value: own,
        params: { ...params, bare_cpu_ms_per_image: bareCpu },
      });
      if (pilMs !== undefined)
        results.push({
          name: `serve's own CPU per request / PIL's ${name.slice('vs bare engine '.length)}`,
          unit: 'x',
          value: own / pilMs,
          params: { ...params, pil_cpu_ms: pilMs },
        });
      const batch = Math.max(1, Math.round(meanBatch));
      const ownAtBatch = cpuMs - (bareAtBatch.get(batch) ?? bareCpu);
      const tag = `${name.slice('vs bare engine '.length)}, against the bare engine at batch ${batch}`;
      results.push({ name: `serve's own CPU per request ${tag}`, unit: 'cpu-ms', value: ownAtBatch, params: { ...params, mean_batch: meanBatch } });
      if (pilMs !== undefined)
        results.push({
          name: `serve's own CPU per request / PIL's ${tag}`,
          unit: 'x',
          value: ownAtBatch / pilMs,
          params: { ...params, pil_cpu_ms: pilMs },
        });
      log.info(
        `${name}: serve's own ${own.toFixed(2)} CPU-ms per request (${ownAtBatch.toFixed(2)} against the bare engine at batch ${batch})${pilMs === undefined ? '' : `, PIL's ${pilMs.toFixed(2)}`}`,
      );
    }
  }
  await writeBenchResults('serve', results);
} finally {
  await temp.remove();
}
