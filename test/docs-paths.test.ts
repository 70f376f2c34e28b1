// Every repository path a document names in backticks exists, and every relative link leads to a file and heading
// that exist: docs that point at moved or deleted files mislead whoever reads them first.
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { it } from 'node:test';

const ROOTS = ['packages/', 'scripts/', 'test/', 'docs/', 'deploy/', 'bench/', 'bench-results/', '.ci/'];
/** In a package's README, paths relative to the package. */
const PACKAGE_ROOTS = ['src/', 'assets/'];

function documents(): string[] {
  const docs = [
    'README.md',
    'bench-results/README.md',
    ...readdirSync('docs')
      .filter((f) => f.endsWith('.md'))
      .map((f) => join('docs', f)),
  ];
  for (const pkg of readdirSync('packages')) if (existsSync(join('packages', pkg, 'README.md'))) docs.push(join('packages', pkg, 'README.md'));
  return docs;
}

/** GitHub's anchor for a heading: lower case, punctuation dropped, spaces as hyphens. */
function slug(heading: string): string {
  return heading
    .trim()
    .toLowerCase()
    .replace(/[^\p{L}\p{N}\s_-]/gu, '')
    .replace(/\s/g, '-');
}

function anchors(doc: string): Set<string> {
  const text = readFileSync(doc, 'utf8').replace(/^```[\s\S]*?^```/gm, '');
  return new Set([...text.matchAll(/^#{1,6} (.+)$/gm)].map(([, heading]) => slug(heading!)));
}

it('every repository path in backticks in README.md, docs/ and the package READMEs exists', () => {
  const missing: string[] = [];
  for (const doc of documents()) {
    const packageDir = doc.startsWith('packages/') ? dirname(doc) : undefined;
    for (const [index, line] of readFileSync(doc, 'utf8').split('\n').entries()) {
      for (const [, token] of line.matchAll(/`([^`\s]+)`/g)) {
        const path = token!
          .replace(/[.,:;)]+$/, '')
          .split('#')[0]!
          .replace(/:\d+$/, '');
        if (/[*<>{}$]/.test(path)) continue;
        const resolved = ROOTS.some((root) => path.startsWith(root))
          ? path
          : packageDir && PACKAGE_ROOTS.some((root) => path.startsWith(root))
            ? join(packageDir, path)
            : undefined;
        if (resolved && !existsSync(resolved)) missing.push(`${doc}:${index + 1}: ${path}`);
      }
    }
  }
  assert.deepEqual(missing, [], `paths that do not exist:\n${missing.join('\n')}`);
});

it('every relative link in README.md, docs/ and the package READMEs leads to a file, and to a heading it names', () => {
  const broken: string[] = [];
  for (const doc of documents()) {
    for (const [index, line] of readFileSync(doc, 'utf8').split('\n').entries()) {
      for (const [, target] of line.matchAll(/\]\(([^)\s]+)\)/g)) {
        if (/^[a-z]+:/.test(target!)) continue;
        const [file, anchor] = target!.split('#') as [string, string | undefined];
        const path = file === '' ? doc : join(dirname(doc), file);
        if (!existsSync(path)) broken.push(`${doc}:${index + 1}: ${target} (no such file)`);
        else if (anchor && path.endsWith('.md') && !anchors(path).has(anchor)) broken.push(`${doc}:${index + 1}: ${target} (no such heading)`);
      }
    }
  }
  assert.deepEqual(broken, [], `broken links:\n${broken.join('\n')}`);
});
