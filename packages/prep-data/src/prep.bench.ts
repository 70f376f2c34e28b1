// prep-data against the seed's single-threaded PIL loop (`Image.open(p).convert('RGB').resize((224, 224), BILINEAR)`
// then tobytes), on the same files in the same run: 2,000 photo-like JPEGs made from real photographs shipped by
// Debian (test-utils' buildPhotoSet: crops of scikit-image's sample photos, long side 300-500 px, q70-90, 4:2:0, a few
// progressive and a few EXIF-rotated). Both are whole processes, spawned and timed by wall clock: the prep-data bin
// (start-up, CSV, decode, pixel files, hashes, manifest) and Debian's python3 with python3-pil. They alternate for
// --runs rounds; the best wall time of each gives the ratio (PIL seconds / prep-data seconds: above 1 means prep-data
// is faster). CPU seconds per process come from /proc (children's user+sys), a figure that holds up better than wall
// time when other work shares the cores. Without PIL the benchmark says so and reports prep-data only.
// Then the work itself, without either process's start-up, CSV or output: decode + resize on one thread, CPU ms per
// image, imgpipe's decodeToTensorBlocking into a reused buffer (what each prep-data decode thread runs) against the PIL loop's own CPU time
// (time.process_time around the loop), best of --runs each.
// The photo set stays under the OS temp dir (imgpipe-bench-photos-*) so reruns skip making it; --fresh remakes it.
// Needs `pnpm run build` (the bin runs dist/).
// Usage: IMGPIPE_BENCH_FILTER=prep node scripts/run-bench.mjs [--count 2000] [--runs 3] [--python /usr/bin/python3] [--fresh]
import { spawn, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { rm, writeFile } from 'node:fs/promises';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { decodeToTensorBlocking } from '@imgpipe/images';
import { exists } from '@imgpipe/kit';
import { buildPhotoSet, writeBenchResults, type BenchResult, makeTempDir } from '@imgpipe/test-utils';

const { values } = parseArgs({
  options: {
    count: { type: 'string', default: '2000' },
    runs: { type: 'string', default: '3' },
    python: { type: 'string', default: '/usr/bin/python3' },
    fresh: { type: 'boolean', default: false },
  },
});
const count = Number(values.count);
const runs = Number(values.runs);
const size = 224;
const bin = fileURLToPath(new URL('../bin/prep-data.js', import.meta.url));
if (!(await exists(fileURLToPath(new URL('../dist/main.js', import.meta.url))))) throw new Error('prep-data is not built: run pnpm run build first');

const PIL_LOOP = `
import sys, time
from PIL import Image
paths = open(sys.argv[1]).read().split('\\n')
started = time.process_time()
for p in paths:
    data = Image.open(p).convert('RGB').resize((${size}, ${size}), Image.BILINEAR).tobytes()
    assert len(data) == ${size * size * 3}
print(time.process_time() - started)
`;
const pil = spawnSync(values.python, ['-c', 'import PIL; print(PIL.__version__)'], { encoding: 'utf8' });
const pilVersion = pil.status === 0 ? pil.stdout.trim() : undefined;
if (!pilVersion) {
  process.stderr.write(
    `PIL is not available from ${values.python} (${(pil.error?.message ?? pil.stderr).trim()}): reporting prep-data only; apt-get install python3-pil\n`,
  );
}

/** Children's CPU seconds so far (user + sys of waited-for children, from /proc; USER_HZ is 100 on Linux). */
function childCpuSeconds(): number | undefined {
  try {
    const fields = readFileSync('/proc/self/stat', 'utf8').split(') ')[1]!.split(' ');
    return (Number(fields[13]) + Number(fields[14])) / 100;
  } catch {
    return undefined;
  }
}

/** Run a command to completion; wall seconds and CPU seconds. Its stderr is kept for the error message. */
async function timed(command: string, args: string[]): Promise<{ wall: number; cpu: number | undefined }> {
  const cpuBefore = childCpuSeconds();
  const started = performance.now();
  const child = spawn(command, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const code = await new Promise<number | null>((resolve, reject) => child.on('error', reject).on('close', resolve));
  if (code !== 0) throw new Error(`${command} ${args.join(' ')} exited with ${code}: ${stderr.trim()}`);
  const wall = (performance.now() - started) / 1000;
  const cpuAfter = childCpuSeconds();
  return { wall, cpu: cpuBefore === undefined || cpuAfter === undefined ? undefined : cpuAfter - cpuBefore };
}

const results: BenchResult[] = [];
const work = await makeTempDir('imgpipe-prep-bench-');
try {
  const pilScript = join(work.path, 'pil_loop.py');
  await writeFile(pilScript, PIL_LOOP);
  {
    const dir = join(tmpdir(), `imgpipe-bench-photos-${count}`);
    if (values.fresh) await rm(dir, { recursive: true, force: true });
    const started = Date.now();
    const paths = await buildPhotoSet({ dir, count });
    process.stderr.write(`photo-like set: ${count} JPEGs in ${dir} (${((Date.now() - started) / 1000).toFixed(1)}s)\n`);
    const csvPath = join(work.path, 'images.csv');
    await writeFile(
      csvPath,
      `bucket,s3_image,category,label,local_image\n${paths.map((p, i) => `b,${i}.jpg,${i % 2 ? 'dog' : 'cat'},${i % 2},${p}`).join('\n')}\n`,
    );
    const listPath = join(work.path, 'paths.txt');
    await writeFile(listPath, paths.join('\n'));
    const image = 'photo-like';
    const params = { image, size, count, cores: availableParallelism(), runs, ...(pilVersion ? { pil: pilVersion } : { pil: 'missing' }) };

    const prep: { wall: number; cpu: number | undefined }[] = [];
    const reference: { wall: number; cpu: number | undefined }[] = [];
    for (let run = 0; run < runs; run++) {
      const out = join(work.path, `prep-${image}`);
      prep.push(await timed(process.execPath, [bin, '--csv', csvPath, '--out', out, '--img-dimensions', String(size), '--quiet']));
      await rm(out, { recursive: true, force: true });
      if (pilVersion) reference.push(await timed(values.python, [pilScript, listPath]));
      process.stderr.write(
        `${image} run ${run + 1}: prep-data ${prep.at(-1)!.wall.toFixed(2)}s${pilVersion ? `, PIL ${reference.at(-1)!.wall.toFixed(2)}s` : ''}\n`,
      );
    }
    const best = (list: { wall: number; cpu: number | undefined }[]) => Math.min(...list.map((r) => r.wall));
    const bestCpu = (list: { wall: number; cpu: number | undefined }[]) =>
      list.every((r) => r.cpu !== undefined) ? Math.min(...list.map((r) => r.cpu!)) : undefined;
    const report = (who: string, list: { wall: number; cpu: number | undefined }[]) => {
      results.push({
        name: `${who} ${image} -> ${size}, whole process, best of ${runs}`,
        unit: 'images/s',
        value: count / best(list),
        params: { ...params, wall_s: list.map((r) => r.wall) },
      });
      const cpu = bestCpu(list);
      if (cpu !== undefined)
        results.push({
          name: `${who} ${image} -> ${size}, whole process, CPU`,
          unit: 'cpu-ms/image',
          value: (cpu * 1000) / count,
          params: { ...params, cpu_s: list.map((r) => r.cpu) },
        });
    };
    report('prep-data', prep);
    if (pilVersion) {
      report('PIL single-threaded', reference);
      results.push({
        name: `prep-data vs PIL ${image} -> ${size}, wall-time ratio (PIL s / prep-data s)`,
        unit: 'x',
        value: best(reference) / best(prep),
        params,
      });
      const [pilCpu, prepCpu] = [bestCpu(reference), bestCpu(prep)];
      if (pilCpu !== undefined && prepCpu !== undefined) {
        results.push({
          name: `prep-data vs PIL ${image} -> ${size}, CPU-time ratio (PIL cpu-s / prep-data cpu-s)`,
          unit: 'x',
          value: pilCpu / prepCpu,
          params,
        });
      }
    }

    // The work alone: one thread, no start-up. Both read each file from disk, decode, convert and resize.
    const loopParams = { ...params, threads: 1 };
    const ours: number[] = [];
    const theirs: number[] = [];
    // Into one buffer, reused, as each prep-data decode thread writes into shared memory (PIL's loop makes a bytes
    // object per image: its allocator recycles them).
    const into = new Uint8Array(size * size * 3);
    for (let run = 0; run < runs; run++) {
      const cpu = process.cpuUsage();
      for (const path of paths) {
        if ((await decodeToTensorBlocking(path, { size, fit: 'fill' }, into)) !== into) throw new Error('bad decode');
      }
      const used = process.cpuUsage(cpu);
      ours.push((used.user + used.system) / 1000 / count);
      if (pilVersion) {
        const loop = spawnSync(values.python, [pilScript, listPath], { encoding: 'utf8' });
        if (loop.status !== 0) throw new Error(`the PIL loop failed: ${loop.stderr}`);
        theirs.push((Number(loop.stdout.trim()) * 1000) / count);
      }
    }
    results.push({
      name: `decode + resize ${image} -> ${size}, one thread, imgpipe (decodeToTensorBlocking)`,
      unit: 'cpu-ms/image',
      value: Math.min(...ours),
      params: { ...loopParams, cpu_ms: ours },
    });
    if (pilVersion) {
      results.push({
        name: `decode + resize ${image} -> ${size}, one thread, PIL`,
        unit: 'cpu-ms/image',
        value: Math.min(...theirs),
        params: { ...loopParams, cpu_ms: theirs },
      });
      results.push({
        name: `decode + resize ${image} -> ${size}, CPU ratio (imgpipe / PIL: at most 1, target 0.5)`,
        unit: 'x',
        value: Math.min(...ours) / Math.min(...theirs),
        params: loopParams,
      });
    }
  }
  await writeBenchResults('prep-data', results);
} finally {
  await work.remove();
}
