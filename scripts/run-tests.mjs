#!/usr/bin/env node
// Runs every *.test.ts (beside the code in packages/*/src, and the cross-package tests in test/) with
// Node's own test runner, TypeScript through tsx, and workspace packages resolved to their sources.
// Usage: node scripts/run-tests.mjs [path-filter ...]
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';

const filters = process.argv.slice(2);
const roots = ['packages', 'test'];

function* walk(dir) {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    if (entry.name === 'node_modules' || entry.name === 'dist') continue;
    const path = join(dir, entry.name);
    if (entry.isDirectory()) yield* walk(path);
    else if (entry.name.endsWith('.test.ts')) yield path;
  }
}

const files = roots
  .flatMap((root) => [...walk(root)])
  .filter((f) => filters.length === 0 || filters.some((x) => f.includes(x)))
  .sort();
if (files.length === 0) {
  console.error(`no test files match ${filters.join(' ')}`);
  process.exit(2);
}
const result = spawnSync(
  process.execPath,
  ['--conditions=imgpipe-source', '--import', 'tsx', '--test', '--test-concurrency=2', '--test-timeout=600000', ...files],
  {
    stdio: 'inherit', // On Node 20 the AWS SDK announces its coming end of support for Node 20 once per process (see
    // docs/troubleshooting.md); it is the same notice every time, so the tests turn it off.
    env: { ...process.env, IMGPIPE_TEST: '1', AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true' },
  },
);
process.exit(result.status ?? 1);
