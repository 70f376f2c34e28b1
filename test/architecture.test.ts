// The package graph is the architecture (docs/architecture.md): libraries below tools, nothing imports upward,
// every import is declared, the S3 tools never pull an ML engine or an image decoder, and only train's fine-tuning
// loads the training kernels.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, it } from 'node:test';

const ROOT = new URL('..', import.meta.url).pathname;
const LAYER: Record<string, number> = { kit: 0, s3: 1, images: 1, 'tfjs-onnx': 1, engines: 2, 'training-kernels': 3, 'test-utils': 2 };
const TOOL_LAYER = 4;

interface Pkg {
  dir: string;
  name: string;
  deps: string[];
  devDeps: string[];
  external: string[];
}

function packages(): Pkg[] {
  return readdirSync(join(ROOT, 'packages')).map((dir) => {
    const json = JSON.parse(readFileSync(join(ROOT, 'packages', dir, 'package.json'), 'utf8')) as {
      name: string;
      dependencies?: Record<string, string>;
      devDependencies?: Record<string, string>;
    };
    const local = (deps: Record<string, string> = {}) =>
      Object.keys(deps)
        .filter((d) => d.startsWith('@imgpipe/'))
        .map((d) => d.slice('@imgpipe/'.length));
    return {
      dir,
      name: json.name.slice('@imgpipe/'.length),
      deps: local(json.dependencies),
      devDeps: local(json.devDependencies),
      external: Object.keys(json.dependencies ?? {}).filter((d) => !d.startsWith('@imgpipe/')),
    };
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

  it('every dependency sits in a lower layer: kit < s3, images, tfjs-onnx < engines, test-utils < training-kernels < tools', () => {
    for (const pkg of all) {
      for (const dep of pkg.deps) {
        assert.ok(layerOf(dep) < layerOf(pkg.name), `${pkg.name} depends on ${dep}, which is not below it`);
      }
      for (const dep of pkg.devDeps)
        assert.ok(layerOf(dep) < layerOf(pkg.name) || dep === 'test-utils', `${pkg.name} has a dev dependency on ${dep}`);
    }
  });

  it('each import of a workspace package is declared (production code: dependencies only)', () => {
    for (const pkg of all) {
      for (const file of sourceFiles(pkg.dir)) {
        const text = readFileSync(file, 'utf8');
        for (const [, staticDep, dynamicDep] of text.matchAll(/from '@imgpipe\/([\w-]+)[^']*'|import\('@imgpipe\/([\w-]+)[^']*'\)/g)) {
          const dep = staticDep ?? dynamicDep;
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
      assert.deepEqual(
        deps.filter((d) => engines.test(d) || d === 'sharp'),
        [],
        `${tool} pulls ${deps.join(', ')}`,
      );
      assert.ok(!closure(tool).has('engines') && !closure(tool).has('images'));
    }
    assert.deepEqual(
      [...externals('prep-data')].filter((d) => engines.test(d)),
      [],
    );
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
      for (const dep of pkg.external)
        assert.ok(imported.has(dep), `${pkg.name} lists ${dep} as a dependency, but only its tests use it (or nothing does): a devDependency`);
    }
    assert.ok(!byName.get('serve')!.external.includes('sharp'), 'serve decodes through @imgpipe/images, which owns sharp');
  });

  it('test-utils stands on kit and s3 only, so every library below engines can test with it (engines keeps its TF.js test models)', () => {
    assert.deepEqual([...byName.get('test-utils')!.deps].sort(), ['kit', 's3']);
  });

  it('review-labels stands on the libraries (kit, engines, images), never on another tool', () => {
    const reviewLabels = byName.get('review-labels');
    assert.ok(reviewLabels, 'packages/review-labels exists');
    assert.deepEqual([...reviewLabels.deps].sort(), ['engines', 'images', 'kit']);
  });
});

/** Production (not test) source files a package's code reaches: its own, and those of the workspace packages it imports, statically or not. */
function productionClosure(entries: string[], dirOf: (name: string) => string): Set<string> {
  const seen = new Set<string>();
  const visit = (file: string) => {
    if (seen.has(file) || !existsSync(file)) return;
    seen.add(file);
    const text = readFileSync(file, 'utf8');
    for (const [, spec] of text.matchAll(/(?:from |import\()'([^']+)'/g)) {
      if (spec!.startsWith('.')) visit(resolve(dirname(file), spec!.replace(/\.js$/, '.ts')));
      const workspace = /^@imgpipe\/([\w-]+)(?:\/(.+))?$/.exec(spec!);
      if (workspace) visit(join(ROOT, 'packages', dirOf(workspace[1]!), 'src', `${workspace[2] ?? 'index'}.ts`));
    }
  };
  for (const entry of entries) visit(entry);
  return seen;
}

describe('which tools load which engine parts', () => {
  const all = packages();
  const byName = new Map(all.map((p) => [p.name, p]));
  const dirOf = (name: string) => byName.get(name)!.dir;
  const closure = (name: string, seen = new Set<string>()): Set<string> => {
    for (const dep of byName.get(name)!.deps) if (!seen.has(dep)) closure(dep, seen.add(dep));
    return seen;
  };
  const trainingKernels = `${join(ROOT, 'packages', 'training-kernels')}/`;

  it("serve and eval-model neither install nor import the training kernels (package graph and every production file's imports)", () => {
    for (const tool of ['serve', 'eval']) {
      assert.ok(!closure(tool).has('training-kernels'), `${tool} depends on training-kernels`);
      const files = productionClosure(
        sourceFiles(dirOf(tool)).filter((f) => !isTestFile(f)),
        dirOf,
      );
      assert.ok(
        [...files].some((f) => f.includes('/packages/engines/src/model-load.ts')),
        `${tool}'s closure reaches engines' loadModel`,
      );
      assert.deepEqual(
        [...files].filter((f) => f.startsWith(trainingKernels)),
        [],
        `${tool} reaches training-kernels`,
      );
    }
  });

  it("only train's fine-tuning imports the training kernels (fineTune and its workers register them)", () => {
    const importers = all
      .filter((pkg) => pkg.name !== 'training-kernels')
      .flatMap((pkg) => sourceFiles(pkg.dir).filter((f) => !isTestFile(f) && readFileSync(f, 'utf8').includes("'@imgpipe/training-kernels")))
      .map((f) => f.slice(ROOT.length));
    assert.deepEqual(importers.sort(), [
      'packages/train/src/fine-tune/fine-tune-model.ts',
      'packages/train/src/fine-tune/fine-tune-worker.ts',
      'packages/train/src/fine-tune/fine-tune.ts',
    ]);
  });

  it("serve's model loading on wasm, in a process of its own, loads no training-kernels module and keeps TF.js's stock kernels", () => {
    const temp = mkdtempSync(join(tmpdir(), 'imgpipe-arch-'));
    try {
      const log = join(temp, 'resolved.txt');
      // Records every module URL the ESM loader resolves (tsx's hooks first, then Node's).
      const hooks = `import { appendFileSync } from 'node:fs';
let log;
export function initialize(data) { log = data.log; }
export async function resolve(specifier, context, next) { const r = await next(specifier, context); appendFileSync(log, r.url + '\\n'); return r; }`;
      const script = `
import { appendFileSync } from 'node:fs';
import { register } from 'node:module';
register('data:text/javascript,' + encodeURIComponent(${JSON.stringify(hooks)}), { data: { log: ${JSON.stringify(log)} } });
const { createModelLoader } = await import(${JSON.stringify(pathToFileURL(join(ROOT, 'packages/serve/src/model-loader.ts')).href)});
await import('@imgpipe/serve');
await import('@imgpipe/eval');
const { buildTestModelDir } = await import(${JSON.stringify(pathToFileURL(join(ROOT, 'packages/engines/src/test-model.ts')).href)});
const dir = await buildTestModelDir(${JSON.stringify(temp)}, { format: 'tfjs-layers', wholeModel: false });
const served = await createModelLoader({ device: 'wasm', aws: { endpoint: '' }, maxPixels: 4000000 })(dir);
const { loadTf } = await import('@imgpipe/engines');
const { tf } = await loadTf('wasm');
const kernels = { backend: tf.getBackend(), training: Boolean(tf.getKernel('ImgpipeBatchNormTraining', 'wasm')), convFilterGrad: Boolean(tf.getKernel('Conv2DBackpropFilter', 'wasm')) };
const stock = ['Tile', 'Sum', 'Minimum'].map((name) => tf.getKernel(name, 'wasm').kernelFunc);
appendFileSync(${JSON.stringify(log)}, 'the test imports training-kernels\\n');
const { registerTrainingKernels } = await import('@imgpipe/training-kernels');
registerTrainingKernels(tf);
kernels.replacedAfterRegistering = ['Tile', 'Sum', 'Minimum'].filter((name, i) => tf.getKernel(name, 'wasm').kernelFunc !== stock[i]);
await served.dispose();
process.stdout.write(JSON.stringify(kernels));
process.exit(0);
`;
      const out = execFileSync(process.execPath, ['--conditions=imgpipe-source', '--import', 'tsx', '--input-type=module', '-e', script], {
        cwd: ROOT,
        encoding: 'utf8',
        stdio: ['ignore', 'pipe', 'inherit'],
      });
      assert.deepEqual(JSON.parse(out), {
        backend: 'wasm',
        training: false,
        convFilterGrad: false,
        replacedAfterRegistering: ['Tile', 'Sum', 'Minimum'],
      });
      const resolved = readFileSync(log, 'utf8').split('\n');
      const marker = pathToFileURL(trainingKernels).href;
      const mark = resolved.indexOf('the test imports training-kernels');
      assert.ok(mark > 0);
      const before = resolved.slice(0, mark);
      assert.ok(
        before.some((url) => url.endsWith('/packages/engines/src/model-load.ts')),
        'the hook saw serve load engines',
      );
      assert.deepEqual(
        before.filter((url) => url.startsWith(marker)),
        [],
        'training-kernels modules loaded by serve or eval-model',
      );
      assert.ok(
        resolved.some((url) => url.startsWith(`${marker}src/wasm-fast-kernels.ts`)),
        'the hook sees training-kernels once the test imports it',
      );
    } finally {
      rmSync(temp, { recursive: true, force: true });
    }
  });
});
