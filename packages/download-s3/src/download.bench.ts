// Download throughput against the local S3 server: objects/s and MB/s for many small objects at each concurrency.
// Usage: node --conditions=imgpipe-source --import tsx packages/download-s3/src/download.bench.ts
//          [--count 2000] [--size 4096] [--concurrency 1,16] [--latency-ms 0,20] [--server process|in-process]
//        (or IMGPIPE_BENCH_FILTER=download pnpm bench)
// By default the server runs in its own process (scripts/s3-server.mjs, needs `npx tsc -b`), as a real store would;
// with --server in-process both sides share one event loop and the figure measures per-object CPU cost. --latency-ms adds a per-request delay through a loopback proxy, a stand-in
// for S3's time to first byte (tens of ms for small objects), which is what concurrency exists to hide.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable, Writable } from 'node:stream';
import { parseArgs } from 'node:util';
import { createBucket, createS3Client, uploadObject } from '@imgpipe/s3';
import { csvString, silentLogger } from '@imgpipe/kit';
import pLimit from 'p-limit';
import { writeBenchResults, type BenchResult, makeTempDir, startFaultyProxy, startS3Server, testAwsConfig } from '@imgpipe/test-utils';
import { runDownloadS3 } from './download.js';

const { values } = parseArgs({
  options: {
    count: { type: 'string', default: '2000' },
    size: { type: 'string', default: '4096' },
    concurrency: { type: 'string', default: '1,16' },
    'latency-ms': { type: 'string', default: '0,20' },
    server: { type: 'string', default: 'process' },
  },
  strict: false,
});
const count = Number(values.count);
const size = Number(values.size);
const levels = String(values.concurrency).split(',').map(Number);
const latencies = String(values['latency-ms']).split(',').map(Number);

/** The local S3 server, in this process or in a child process that dies with this one. */
async function startServer(mode: string): Promise<{ endpoint: string; close(): Promise<void> }> {
  if (mode === 'in-process') return startS3Server();
  const child = spawn(process.execPath, ['scripts/s3-server.mjs', '--stdin-lifeline'], { stdio: ['pipe', 'pipe', 'inherit'] });
  const [line] = (await once(createInterface({ input: child.stdout! }), 'line')) as [string];
  const { endpoint } = JSON.parse(line) as { endpoint: string };
  return { endpoint, close: async () => void child.stdin!.end() };
}

const serverMode = String(values.server);
const server = await startServer(serverMode);
const serverAws = testAwsConfig(server.endpoint);
const setupClient = createS3Client(serverAws, { concurrency: 16 });
const temp = await makeTempDir('imgpipe-bench-');
try {
  await createBucket(setupClient, 'bench');
  const keys = Array.from({ length: count }, (_, i) => `bench/${String(i).padStart(6, '0')}.jpg`);
  await pLimit(16).map(keys, (key) => uploadObject(setupClient, 'bench', key, { bytes: randomBytes(size) }));
  const csv = join(temp.path, 'images.csv');
  await writeFile(
    csv,
    await csvString(
      ['bucket', 's3_image', 'category', 'label'],
      keys.map((k) => ({ bucket: 'bench', s3_image: k, category: 'cat', label: 0 })),
    ),
  );
  const results: BenchResult[] = [];
  for (const latency of latencies) {
    const proxy = latency > 0 ? await startFaultyProxy(server.endpoint, { latencyMs: latency }) : undefined;
    const tag = latency > 0 ? `_lat${latency}ms` : '';
    const rates = new Map<number, number>();
    for (const concurrency of levels) {
      const client = createS3Client(testAwsConfig(proxy?.endpoint ?? server.endpoint), { concurrency, maxAttempts: 1 });
      const sink = new Writable({ write: (_chunk, _encoding, callback) => callback() });
      const started = process.hrtime.bigint();
      const summary = await runDownloadS3({
        csv,
        dest: join(temp.path, `c${concurrency}${tag}`),
        download: true,
        client,
        concurrency,
        stdin: Readable.from([]),
        stdout: sink,
        cwd: temp.path,
        log: silentLogger,
      });
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      client.destroy();
      if (summary.ok !== count) throw new Error(`expected ${count} downloads, got ${summary.ok} (${summary.failed} failed)`);
      const params = {
        concurrency,
        objects: count,
        object_bytes: size,
        latency_ms: latency,
        server: `fauxqs on loopback, ${serverMode === 'in-process' ? 'same process' : 'own process'}`,
      };
      rates.set(concurrency, count / seconds);
      results.push({ name: `objects_per_s_c${concurrency}${tag}`, unit: 'objects/s', value: count / seconds, params });
      results.push({ name: `mb_per_s_c${concurrency}${tag}`, unit: 'MB/s', value: summary.bytes / 1e6 / seconds, params });
    }
    await proxy?.close();
    const [low, high] = [Math.min(...levels), Math.max(...levels)];
    if (rates.has(low) && rates.has(high) && low !== high) {
      results.push({
        name: `speedup_c${high}_vs_c${low}${tag}`,
        unit: 'x',
        value: rates.get(high)! / rates.get(low)!,
        params: { objects: count, object_bytes: size, latency_ms: latency },
      });
    }
  }
  await writeBenchResults('download-s3', results);
} finally {
  setupClient.destroy();
  await server.close();
  await temp.remove();
}
