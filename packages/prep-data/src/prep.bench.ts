// prep-data throughput: images/s for generated JPEGs of about 500x375 and 1024x768 resized to --size (224), with
// 1 and 2 images in flight. "decode" is decodeToTensor alone (sharp's share); "whole run" is runPrepData end to end
// (CSV, decode, pixel file, split copy, CSVs, manifest, rename). Generated images are kept under the OS temp dir
// (imgpipe-bench-images-*) so reruns skip generation; --fresh regenerates. Each figure also comes as CPU ms per
// image, which stays meaningful on a busy machine where images/s does not.
// Usage: IMGPIPE_BENCH_FILTER=prep node scripts/run-bench.mjs [--count 2000] [--size 224] [--fresh]
import { availableParallelism, tmpdir } from 'node:os';
import { readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { decodeToTensor, tuneImageEngine } from '@imgpipe/images';
import { exists } from '@imgpipe/kit';
import { writeBenchResults, type BenchResult, generateImageSet, makeTempDir } from '@imgpipe/test-utils';
import { orderedMap } from './decode-pass.js';
import { runPrepData } from './prep.js';

const { values } = parseArgs({ options: { count: { type: 'string', default: '2000' }, size: { type: 'string', default: '224' }, fresh: { type: 'boolean', default: false } } });
const count = Number(values.count);
const size = Number(values.size);
const results: BenchResult[] = [];
// CPU time (all threads, libvips included) per image: a figure that holds up when other work shares the cores.
const cpuMs = (since: NodeJS.CpuUsage) => {
  const used = process.cpuUsage(since);
  return (used.user + used.system) / 1000;
};
const out = await makeTempDir('imgpipe-prep-bench-');
try {
  for (const [width, height] of [[500, 375], [1024, 768]] as const) {
    const dir = join(tmpdir(), `imgpipe-bench-images-${width}x${height}-${count}`);
    if (values.fresh) await rm(dir, { recursive: true, force: true });
    if (!(await exists(join(dir, 'images.csv')))) {
      const started = Date.now();
      await generateImageSet({ dir, count, seed: 1, sizes: [[width, height]], quality: 90 });
      process.stderr.write(`generated ${count} ${width}x${height} JPEGs in ${((Date.now() - started) / 1000).toFixed(1)}s\n`);
    }
    const csv = await readFile(join(dir, 'images.csv'));
    const paths = csv.toString('utf8').trim().split('\n').slice(1).map((line) => line.split(',').at(-1)!);
    await tuneImageEngine({ cache: false });
    for (const inFlight of [1, 2, 4]) {
      const params = { image: `${width}x${height}`, size, in_flight: inFlight, count, cores: availableParallelism() };
      let cpu = process.cpuUsage();
      let started = performance.now();
      for await (const pixels of orderedMap(paths, (path) => decodeToTensor(path, { size, fit: 'fill' }), inFlight)) {
        if (pixels.length !== size * size * 3) throw new Error('bad decode');
      }
      results.push({ name: `decode ${width}x${height} -> ${size}, ${inFlight} in flight`, unit: 'images/s', value: count / ((performance.now() - started) / 1000), params });
      results.push({ name: `decode ${width}x${height} -> ${size}, ${inFlight} in flight, CPU`, unit: 'cpu-ms/image', value: cpuMs(cpu) / count, params });

      cpu = process.cpuUsage();
      started = performance.now();
      const result = await runPrepData({
        csv,
        csvSource: 'bench.csv',
        out: join(out.path, `prep-${width}-${inFlight}`),
        size,
        fractions: { train: 0.7, val: 0.15, test: 0.15 },
        seed: 42,
        concurrency: inFlight,
        quiet: true,
      });
      const seconds = (performance.now() - started) / 1000;
      if (result.manifest.rejected !== 0) throw new Error('unexpected rejects');
      results.push({ name: `whole run ${width}x${height} -> ${size}, ${inFlight} in flight`, unit: 'images/s', value: count / seconds, params });
      results.push({ name: `whole run ${width}x${height} -> ${size}, ${inFlight} in flight, CPU`, unit: 'cpu-ms/image', value: cpuMs(cpu) / count, params });
      await rm(join(out.path, `prep-${width}-${inFlight}`), { recursive: true, force: true });
    }
  }
  await writeBenchResults('prep-data', results);
} finally {
  await out.remove();
}
