// The package graph is the architecture (docs/architecture.md): libraries below tools, nothing imports upward,
// every import is declared, and the S3 tools never pull an ML engine or an image decoder.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';

const ROOT = new URL('..', import.meta.url).pathname;
const LAYER: Record<string, number> = { kit: 0, s3: 1, images: 1, engines: 1, 'test-utils': 2 };
const TOOL_LAYER = 3;

interface Pkg { dir: string; name: string; deps: string[]; devDeps: string[]; external: string[] }

function packages(): Pkg[] {
  return readdirSync(join(ROOT, 'packages')).map((dir) => {
    const json = JSON.parse(readFileSync(join(ROOT, 'packages', dir, 'package.json'), 'utf8')) as { name: string; dependencies?: Record<string, string>; devDependencies?: Record<string, string> };
    const local = (deps: Record<string, string> = {}) => Object.keys(deps).filter((d) => d.startsWith('@imgpipe/')).map((d) => d.slice('@imgpipe/'.length));
    return { dir, name: json.name.slice('@imgpipe/'.length), deps: local(json.dependencies), devDeps: local(json.devDependencies), external: Object.keys(json.dependencies ?? {}).filter((d) => !d.startsWith('@imgpipe/')) };
  });
}

function sourceFiles(dir: string): string[] {
  return readdirSync(join(ROOT, 'packages', dir, 'src'), { recursive: true })
    .map(String)
    .filter((f) => f.endsWith('.ts'))
    .map((f) => join(ROOT, 'packages', dir, 'src', f));
}

const layerOf = (name: string) => LAYER[name] ?? TOOL_LAYER;
const isTestFile = (file: string) => /\.(test|bench)\.ts$/.test(file) || /\/test-[^/]*\.ts$/.test(file);

describe('the package graph', () => {
  const all = packages();
  const byName = new Map(all.map((p) => [p.name, p]));

  it('every dependency sits in a lower layer: kit < s3, images, engines < test-utils < tools', () => {
    for (const pkg of all) {
      for (const dep of pkg.deps) {
        assert.ok(layerOf(dep) < layerOf(pkg.name), `${pkg.name} depends on ${dep}, which is not below it`);
      }
      for (const dep of pkg.devDeps) assert.ok(layerOf(dep) < layerOf(pkg.name) || dep === 'test-utils', `${pkg.name} has a dev dependency on ${dep}`);
    }
  });

  it('each import of a workspace package is declared (production code: dependencies only)', () => {
    for (const pkg of all) {
      for (const file of sourceFiles(pkg.dir)) {
        const text = readFileSync(file, 'utf8');
        for (const [, dep] of text.matchAll(/from '@imgpipe\/([\w-]+)[^']*'|import\('@imgpipe\/([\w-]+)[^']*'\)/g)) {
          if (!dep || dep === pkg.name) continue;
          const declared = isTestFile(file) ? [...pkg.deps, ...pkg.devDeps] : pkg.deps;
          assert.ok(declared.includes(dep), `${file} imports @imgpipe/${dep}, which ${pkg.name}'s package.json does not declare`);
        }
      }
    }
  });

  it('download-s3 and upload-s3 never install an ML engine or sharp; prep-data no engine', () => {
    const closure = (name: string, seen = new Set<string>()): Set<string> => {
      for (const dep of byName.get(name)!.deps) if (!seen.has(dep)) closure(dep, seen.add(dep));
      return seen;
    };
    const externals = (name: string) => new Set([name, ...closure(name)].flatMap((p) => byName.get(p)!.external));
    const engines = /^(onnxruntime-node|onnx-proto|webgpu|@tensorflow\/)/;
    for (const tool of ['download-s3', 'upload-s3']) {
      const deps = [...externals(tool)];
      assert.deepEqual(deps.filter((d) => engines.test(d) || d === 'sharp'), [], `${tool} pulls ${deps.join(', ')}`);
      assert.ok(!closure(tool).has('engines') && !closure(tool).has('images'));
    }
    assert.deepEqual([...externals('prep-data')].filter((d) => engines.test(d)), []);
  });

  it('a production dependency is one that production code imports (what only tests use is a devDependency)', () => {
    // e.g. serve's tests decode and draw images with sharp, while its code reaches images only through @imgpipe/images.
    for (const pkg of all) {
      const code = ['src', 'bin', 'ui']
        .flatMap((sub) => {
          try {
            return readdirSync(join(ROOT, 'packages', pkg.dir, sub), { recursive: true }).map((f) => join(ROOT, 'packages', pkg.dir, sub, String(f)));
          } catch {
            return [];
          }
        })
        .filter((file) => /\.(ts|js|mjs)$/.test(file) && !isTestFile(file))
        .map((file) => readFileSync(file, 'utf8'))
        .join('\n');
      const imported = new Set([...code.matchAll(/(?:from |import |import\(|require\()'((?:@[\w.-]+\/)?[\w.-]+)[^']*'/g)].map((m) => m[1]));
      for (const dep of pkg.external) assert.ok(imported.has(dep), `${pkg.name} lists ${dep} as a dependency, but only its tests use it (or nothing does): a devDependency`);
    }
    assert.ok(!byName.get('serve')!.external.includes('sharp'), 'serve decodes through @imgpipe/images, which owns sharp');
  });

  it('review-labels stands on the libraries (kit, engines, images), never on another tool', () => {
    const reviewLabels = byName.get('review-labels');
    assert.ok(reviewLabels, 'packages/review-labels exists');
    assert.deepEqual([...reviewLabels.deps].sort(), ['engines', 'images', 'kit']);
  });
});
