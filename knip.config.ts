// knip (run by `make lint`): every export is imported somewhere, and every file is reached from an entry point.
// Entry points are what starts a module by name rather than by import: package.json exports (each package's
// src/index.ts, which knip finds itself), bins, tool mains, worker entries (started by path: startWorkers,
// WorkerPool.start), tests and benches, test helpers, the serve UI and the published snippet (load_model.mjs, whose
// exports are marked @public). Each package gets the patterns that match something in it, as knip hints at the rest.
import { globSync, readdirSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import type { KnipConfig } from 'knip';

const PACKAGE_ENTRIES = [
  'bin/*.js',
  'src/main.ts',
  'src/cli.ts',
  'src/**/*-worker.ts',
  'src/**/*.test.ts',
  'src/**/*.bench.ts',
  'src/test-*.ts',
  'ui/app.ts',
  'assets/**/*.mjs',
];
const PACKAGE_PROJECT = ['bin/*.js', 'src/**/*.ts', 'ui/**/*.ts', 'assets/**/*.mjs'];

const matching = (dir: string, patterns: string[]) => patterns.filter((pattern) => globSync(pattern, { cwd: dir }).length > 0);

// Workspace packages resolve as the tests run them, to their sources (the `imgpipe-source` condition of each export),
// so that knip needs no build and sees subpaths such as @imgpipe/engines/test-model, which dist/ does not have.
const paths: Record<string, string[]> = {};
for (const name of readdirSync('packages')) {
  const manifest = JSON.parse(readFileSync(`packages/${name}/package.json`, 'utf8')) as { name: string; exports?: Record<string, unknown> };
  for (const [subpath, target] of Object.entries(manifest.exports ?? {})) {
    const source = (target as { 'imgpipe-source'?: string })['imgpipe-source'];
    if (source) paths[manifest.name + subpath.slice(1)] = [resolve('packages', name, source)];
  }
}

const packages = Object.fromEntries(
  readdirSync('packages').map((name) => {
    const dir = `packages/${name}`;
    // test-utils is a library for tests only: all of it is entry (its exports are for tests to pick from).
    if (name === 'test-utils') return [dir, { entry: ['src/**/*.ts'], project: ['src/**/*.ts'], includeEntryExports: false, paths }];
    return [dir, { entry: matching(dir, PACKAGE_ENTRIES), project: matching(dir, PACKAGE_PROJECT), paths }];
  }),
);

export default {
  // Not classMembers: with it, knip 5.88 stops reporting unused re-exports of the index files.
  include: ['exports', 'types', 'nsExports', 'nsTypes', 'enumMembers', 'files', 'duplicates'],
  // A package's index.ts re-exports (and what `export *` passes on) count as unused unless another module imports them.
  includeEntryExports: true,
  workspaces: {
    '.': {
      entry: ['scripts/*.mjs', 'bench/*.ts', 'test/**/*.ts'],
      project: ['scripts/**/*.mjs', 'bench/**/*.ts', 'test/**/*.ts'],
      includeEntryExports: false,
      paths,
    },
    ...packages,
  },
} satisfies KnipConfig;
