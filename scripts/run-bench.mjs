#!/usr/bin/env node
// `pnpm bench`: runs every *.bench.ts under packages/*/src one after another (never in parallel: they time
// things), each writing bench-results/<suite>.json. Extra arguments are passed to each benchmark
// (e.g. `pnpm bench -- --device webgpu`); IMGPIPE_BENCH_FILTER=word runs only the matching files.
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';

const filter = process.env.IMGPIPE_BENCH_FILTER;
const files = readdirSync('packages')
  .flatMap((pkg) => {
    const src = join('packages', pkg, 'src');
    try {
      return readdirSync(src, { recursive: true }).map((f) => join(src, String(f)));
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
