import { execFileSync } from 'node:child_process';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { writeJsonAtomic } from '@imgpipe/kit';

export interface BenchResult {
  name: string;
  unit: string;
  value: number;
  /** Anything that qualifies the figure: concurrency, image size, device, counts. */
  params?: Record<string, unknown>;
}

export interface MachineInfo {
  cores: number;
  cpu: string;
  node: string;
  platform: string;
}

export function machineInfo(): MachineInfo {
  const list = cpus();
  return { cores: list.length, cpu: list[0]?.model ?? 'unknown', node: process.version, platform: `${process.platform}-${process.arch}` };
}

/** The checkout's commit (with "+changes" when the work tree differs from it), or "unknown" outside git. */
function currentCommit(): string {
  try {
    const head = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    const dirty = execFileSync('git', ['status', '--porcelain', '--untracked-files=no'], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    }).trim();
    return dirty ? `${head}+changes` : head;
  } catch {
    return 'unknown';
  }
}

/**
 * Write one benchmark file, bench-results/<suite>.json (or $IMGPIPE_BENCH_DIR), and echo each figure on stderr.
 * Benchmarks are scripts named *.bench.ts, run by `pnpm bench`; timing lives here, never in tests.
 */
export async function writeBenchResults(
  suite: string,
  results: BenchResult[],
  dir = process.env.IMGPIPE_BENCH_DIR ?? 'bench-results',
): Promise<string> {
  const path = join(dir, `${suite}.json`);
  await writeJsonAtomic(path, { suite, date: new Date().toISOString(), commit: currentCommit(), machine: machineInfo(), results });
  for (const r of results) {
    const params = r.params ? ` ${JSON.stringify(r.params)}` : '';
    process.stderr.write(`bench ${suite}: ${r.name} = ${Number(r.value.toPrecision(4))} ${r.unit}${params}\n`);
  }
  return path;
}
