// Every repository path a document names in backticks exists: docs that point at moved or deleted files mislead
// whoever reads them first.
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { it } from 'node:test';

const ROOTS = ['packages/', 'scripts/', 'test/', 'docs/', 'deploy/', 'bench/', '.ci/'];

function documents(): string[] {
  const docs = ['README.md', ...readdirSync('docs').filter((f) => f.endsWith('.md')).map((f) => join('docs', f))];
  for (const pkg of readdirSync('packages')) if (existsSync(join('packages', pkg, 'README.md'))) docs.push(join('packages', pkg, 'README.md'));
  return docs;
}

it('every repository path in backticks in README.md, docs/ and the package READMEs exists', () => {
  const missing: string[] = [];
  for (const doc of documents()) {
    for (const [index, line] of readFileSync(doc, 'utf8').split('\n').entries()) {
      for (const [, token] of line.matchAll(/`([^`\s]+)`/g)) {
        const path = token!.replace(/[.,:;)]+$/, '').split('#')[0]!.replace(/:\d+$/, '');
        if (!ROOTS.some((root) => path.startsWith(root)) || /[*<>{}$]/.test(path)) continue;
        if (!existsSync(path)) missing.push(`${doc}:${index + 1}: ${path}`);
      }
    }
  }
  assert.deepEqual(missing, [], `paths that do not exist:\n${missing.join('\n')}`);
});
