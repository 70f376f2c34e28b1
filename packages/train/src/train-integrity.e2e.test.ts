// End-to-end integrity of train: overlapping runs, corrupt pixels, signals. Uses the real bin (run `npx tsc -b` first).
import assert from 'node:assert/strict';
import { cp, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { walkDir } from '@imgpipe/kit';
import { buildTinyConvBackbone, makeTempDir, type TempDir } from '@imgpipe/test-utils';
import { TEST_SIZE, tinyBackbone, writeLearnableDataset } from '@imgpipe/test-utils';

const BIN = fileURLToPath(new URL('../bin/train.js', import.meta.url));
let temp: TempDir;
let data: string;
let common: string[];

before(async () => {
  temp = await makeTempDir('imgpipe-train-integrity-');
  data = await writeLearnableDataset(join(temp.path, 'data'));
  const tiny = await tinyBackbone(join(temp.path, 'backbone'));
  common = [
    '--backbone',
    tiny.backbone,
    '--feature-layer',
    tiny.featureLayer,
    '--preprocess',
    tiny.preprocess,
    '--device',
    'wasm',
    '--lr',
    '0.001,0.01',
    '--layer-size',
    '4',
    '--epochs',
    '3',
    '--batch-size',
    '16',
    '--seed',
    '3',
  ];
});
after(() => temp.remove());

const trainBin = (args: string[], env: Record<string, string> = {}) =>
  execa(process.execPath, [BIN, ...args], { env: { IMGPIPE_NO_WEBGPU: '1', ...env }, reject: false });
const jsonl = async (runDir: string) =>
  (await readFile(join(runDir, 'trials.jsonl'), 'utf8'))
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as { event: string; trial: string });

test('two identical train commands at once: one run with correct trial lines; the other exits 75', async () => {
  const out = join(temp.path, 'overlap');
  const args = [...common, '--data', data, '--cache-dir', join(temp.path, 'cache-overlap'), '--out', out];
  const [a, b] = await Promise.all([trainBin(args, { IMGPIPE_TEST_EPOCH_DELAY_MS: '100' }), trainBin(args, { IMGPIPE_TEST_EPOCH_DELAY_MS: '100' })]);
  const codes = [a.exitCode, b.exitCode].sort();
  assert.deepEqual(codes, [0, 75], `${a.stderr}\n---\n${b.stderr}`);
  const loser = a.exitCode === 75 ? a : b;
  assert.match(loser.stderr, /locked by train \(pid \d+ on .*\); wait for it to finish or pass --wait-lock SECONDS/);
  assert.equal(loser.stdout, '');
  const runs = (await readdir(out)).filter((name) => !name.startsWith('.'));
  assert.equal(runs.length, 1, 'one run directory');
  const lines = await jsonl(join(out, runs[0]!));
  assert.deepEqual(
    lines.filter((l) => l.event === 'trial').map((l) => l.trial),
    ['t001', 't002'],
  );
  assert.equal(lines.filter((l) => l.event === 'epoch').length, 6, 'three epochs per trial, none duplicated');
  assert.deepEqual(
    (await readdir(out)).filter((name) => name.startsWith('.')),
    [],
    'locks released, no temp files',
  );
  // Waiting instead: the second command resumes nothing and finds the finished run's command already done.
  const waited = await trainBin([...args, '--wait-lock', '60']);
  assert.equal(waited.exitCode, 0, waited.stderr);
});

test('a same-size corrupted train.u8 is refused (exit 2) and poisons no cache; the intact dataset then trains', async () => {
  const corrupt = join(temp.path, 'corrupt');
  await cp(data, corrupt, { recursive: true });
  const pixels = await readFile(join(corrupt, 'train.u8'));
  for (let i = 0; i < pixels.length; i += 7) pixels[i] = 255 - pixels[i]!;
  await writeFile(join(corrupt, 'train.u8'), pixels);
  const cache = join(temp.path, 'cache-corrupt');
  const bad = await trainBin([...common, '--data', corrupt, '--cache-dir', cache, '--out', join(temp.path, 'runs-corrupt')]);
  assert.equal(bad.exitCode, 2, bad.stderr);
  assert.match(bad.stderr, /train\.u8: sha256 [0-9a-f]{64} does not match [0-9a-f]{64} in the dataset manifest/);
  const good = await trainBin([...common, '--data', data, '--cache-dir', cache, '--out', join(temp.path, 'runs-good')]);
  assert.equal(good.exitCode, 0, good.stderr);
  assert.doesNotMatch(good.stderr, /from cache/, 'nothing was cached from the corrupt pixels');
});

test('SIGTERM and SIGINT stop train with 143 and 130, leaving no temp file or lock', async () => {
  for (const [signal, code] of [
    ['SIGTERM', 143],
    ['SIGINT', 130],
  ] as const) {
    const out = join(temp.path, `signal-${signal}`);
    const child = trainBin([...common, '--data', data, '--cache-dir', join(temp.path, 'cache-signal'), '--out', out], {
      IMGPIPE_TEST_EPOCH_DELAY_MS: '300',
    });
    for (let i = 0; i < 600; i++) {
      await new Promise((r) => setTimeout(r, 50));
      const runs = (await readdir(out).catch(() => [])).filter((name) => !name.startsWith('.'));
      if (runs.length > 0 && (await readFile(join(out, runs[0]!, 'trials.jsonl'), 'utf8').catch(() => '')).includes('"epoch"')) break;
    }
    child.kill(signal);
    const result = await child;
    assert.equal(result.exitCode, code, result.stderr);
    const leftovers = (await walkDir(out)).map((e) => e.path).filter((path) => /\.tmp$|\.lock$/.test(path));
    assert.deepEqual(leftovers, [], `${signal}: no temp file or lock left`);
  }
});

test('SIGINT while fine-tuning in worker threads: exit 130, no fine-tuning directory or temp file left', async () => {
  const out = join(temp.path, 'signal-fine-tune');
  const tfjs = await buildTinyConvBackbone({ dir: join(temp.path, 'tfjs-backbone'), inputSize: TEST_SIZE, format: 'tfjs-layers', seed: 1 });
  const args = [...common];
  args.splice(0, 6, '--backbone', tfjs.path, '--feature-layer', 'features', '--preprocess', 'torch');
  const child = trainBin([
    ...args,
    '--data',
    data,
    '--cache-dir',
    join(temp.path, 'cache-signal'),
    '--out',
    out,
    '--fine-tune',
    'all',
    '--fine-tune-epochs',
    '200',
    '--fine-tune-workers',
    '2',
  ]);
  let stderr = '';
  await new Promise<void>((resolve, reject) => {
    child.stderr!.on('data', (chunk: Buffer) => {
      stderr += String(chunk);
      if (/fine-tune epoch 1\/200: /.test(stderr)) resolve();
    });
    child.once('exit', () => reject(new Error(`train exited before fine-tuning an epoch: ${stderr}`)));
  });
  assert.match(stderr, /split across 2 worker threads/);
  child.kill('SIGINT');
  const result = await child;
  assert.equal(result.exitCode, 130, result.stderr);
  const left = (await walkDir(out)).map((e) => e.path).filter((path) => /\.tmp$|\.lock$|\.fine-tune/.test(path));
  assert.deepEqual(left, [], 'no fine-tuning directory, temp file or lock left');
});
