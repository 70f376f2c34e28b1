#!/usr/bin/env node
// `pnpm bench`: runs every *.bench.ts under packages/*/src and bench/ one after another (never in parallel: they time
// things), each writing bench-results/<suite>.json. Extra arguments are passed to each benchmark
// (e.g. `pnpm bench -- --device webgpu`); IMGPIPE_BENCH_FILTER=word runs only the matching files.
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';

const filter = process.env.IMGPIPE_BENCH_FILTER;
const sourceDirs = [...readdirSync('packages').map((pkg) => join('packages', pkg, 'src')), 'bench'];
const files = sourceDirs
  .flatMap((dir) => {
    try {
      return readdirSync(dir, { recursive: true }).map((f) => join(dir, String(f)));
    } catch {
      return [];
    }
  })
  .filter((f) => f.endsWith('.bench.ts') && (!filter || f.includes(filter)))
  .sort();
let failed = 0;
for (const file of files) {
  process.stderr.write(`\n== ${file}\n`);
  const result = spawnSync(process.execPath, ['--conditions=imgpipe-source', '--import', 'tsx', file, ...process.argv.slice(2)], {
    stdio: 'inherit',
  });
  if (result.status !== 0) failed += 1;
}
process.stderr.write(`\n${files.length - failed} benchmark files ok, ${failed} failed; results in bench-results/\n`);
process.exit(failed ? 1 : 0);
