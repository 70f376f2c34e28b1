// Start-up time of every tool's real bin (build first: `pnpm run build`; the bins load dist/) for --version,
// --help and a usage error (an unknown flag: exit 2), each against `node -e 0` in the same run. Runs alternate
// between a bin and bare node, and each figure is a median wall time, so a machine loaded by other work shifts
// both alike: `over_node_s` is what the tool adds. `cpu_s` (mean CPU time per run, from /proc) is steadier still
// on a loaded machine. A first run of each command fills Node's compile cache, which each bin enables.
// --baseline DIR times another checkout's bins too (e.g. main, built), in the same rounds: a before and after.
// Usage: IMGPIPE_BENCH_FILTER=startup node scripts/run-bench.mjs [--runs 15] [--baseline ../main]
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { machineInfo, writeBenchResults, type BenchResult } from '@imgpipe/test-utils';

const { values } = parseArgs({ options: { runs: { type: 'string', default: '15' }, baseline: { type: 'string' } } });
const runs = Number(values.runs);
if (!Number.isInteger(runs) || runs < 1) throw new Error(`expected --runs to be a positive integer, got '${values.runs}'`);

const BINS: Record<string, string> = {
  'download-s3': 'packages/download-s3/bin/download-s3.js',
  'prep-data': 'packages/prep-data/bin/prep-data.js',
  train: 'packages/train/bin/train.js',
  'eval-model': 'packages/eval/bin/eval-model.js',
  serve: 'packages/serve/bin/serve.js',
  'upload-s3': 'packages/upload-s3/bin/upload-s3.js',
  'review-labels': 'packages/review-labels/bin/review-labels.js',
};
const CASES: Record<string, { args: string[]; code: number }> = {
  '--version': { args: ['--version'], code: 0 },
  '--help': { args: ['--help'], code: 0 },
  'usage error': { args: ['--no-such-flag'], code: 2 },
};
const checkouts: [label: string, root: string][] = [
  ['current', resolve('.')],
  ...(values.baseline ? [['baseline', resolve(values.baseline)] as [string, string]] : []),
];

/**
 * CPU seconds (user + system) of this process's children that have been waited for, from /proc (Linux; 10 ms
 * ticks, so only a sum over many runs is meaningful); undefined elsewhere. CPU time barely grows when other work
 * shares the cores, unlike wall time, so it is the steadier figure on a loaded machine.
 */
function childCpuSeconds(): number | undefined {
  try {
    const fields = readFileSync('/proc/self/stat', 'utf8').split(') ')[1]!.split(' ');
    return (Number(fields[13]) + Number(fields[14])) / 100; // cutime, cstime in USER_HZ (100 on Linux)
  } catch {
    return undefined;
  }
}

/** Wall and CPU seconds of one run; a run that does not exit with the expected code stops the benchmark. */
function time(args: string[], code: number): { wall: number; cpu: number | undefined } {
  const cpuBefore = childCpuSeconds();
  const start = process.hrtime.bigint();
  const result = spawnSync(process.execPath, args, { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, NODE_NO_WARNINGS: '1' } });
  const wall = Number(process.hrtime.bigint() - start) / 1e9;
  const cpuAfter = childCpuSeconds();
  if (result.status !== code) throw new Error(`node ${args.join(' ')}: expected exit ${code}, got ${result.status}: ${result.stderr}`);
  return { wall, cpu: cpuBefore === undefined || cpuAfter === undefined ? undefined : cpuAfter - cpuBefore };
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

const bare = ['-e', '0'];
const commands = Object.entries(BINS).flatMap(([tool, bin]) =>
  checkouts.flatMap(([checkout, root]) =>
    Object.entries(CASES).map(([name, { args, code }]) => ({ tool, checkout, name, args: [resolve(root, bin), ...args], code })),
  ),
);
const samples = new Map(commands.map((c) => [c, [] as ReturnType<typeof time>[]]));
const nodeSamples: ReturnType<typeof time>[] = [];
for (const c of commands) time(c.args, c.code); // warm-up: fills the compile cache and the file system's
time(bare, 0);
for (let round = 0; round < runs; round++) {
  for (const c of commands) {
    nodeSamples.push(time(bare, 0));
    samples.get(c)!.push(time(c.args, c.code));
  }
}

/** Median wall seconds, and mean CPU seconds (a sum of 10 ms ticks over the runs, divided), of a command's runs. */
const summary = (runs: ReturnType<typeof time>[]) => {
  const cpu = runs.every((r) => r.cpu !== undefined) ? runs.reduce((sum, r) => sum + r.cpu!, 0) / runs.length : undefined;
  return { wall: median(runs.map((r) => r.wall)), cpu };
};
const round = (seconds: number | undefined) => (seconds === undefined ? undefined : Number(seconds.toFixed(4)));
const bare0 = summary(nodeSamples);
const params = { runs, machine: machineInfo() };
const results: BenchResult[] = [
  { name: 'node -e 0', unit: 's', value: bare0.wall, params: { ...params, runs: nodeSamples.length, cpu_s: round(bare0.cpu) } },
];
for (const c of commands) {
  const { wall, cpu } = summary(samples.get(c)!);
  const prefix = c.checkout === 'current' ? '' : `${c.checkout} `;
  const checkout = c.checkout === 'current' ? {} : { checkout: values.baseline };
  const overCpu = cpu === undefined || bare0.cpu === undefined ? undefined : cpu - bare0.cpu;
  results.push({
    name: `${prefix}${c.tool} ${c.name}`,
    unit: 's',
    value: wall,
    params: {
      ...params,
      ...checkout,
      args: c.args.slice(1),
      over_node_s: round(wall - bare0.wall),
      cpu_s: round(cpu),
      cpu_over_node_s: round(overCpu),
    },
  });
}
for (const [checkout] of checkouts) {
  const own = commands.filter((c) => c.checkout === checkout).map((c) => summary(samples.get(c)!).wall);
  const prefix = checkout === 'current' ? '' : `${checkout} `;
  results.push({ name: `${prefix}slowest over node -e 0`, unit: 's', value: Math.max(...own) - bare0.wall, params });
}
console.error(`results: ${await writeBenchResults('startup', results)}`);
