// End-to-end: the real bin (packages/train/bin/train.js -> dist/main.js; run `npx tsc -b` first), and where a test
// needs a trial to fail or a sweep slow enough to kill, the same CLI with test hooks injected (test-train-bin.ts:
// IMGPIPE_TEST_EPOCH_DELAY_MS pauses after each epoch, IMGPIPE_TEST_FAIL_TRIALS fails trial ids as a crash would).
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { makeTempDir, type TempDir } from '@imgpipe/test-utils';
import { tinyBackbone, writeLearnableDataset } from './test-dataset.js';

const BIN = fileURLToPath(new URL('../bin/train.js', import.meta.url));
let temp: TempDir;
let common: string[];

before(async () => {
  temp = await makeTempDir('imgpipe-train-e2e-');
  const data = await writeLearnableDataset(join(temp.path, 'data'));
  const tiny = await tinyBackbone(join(temp.path, 'backbone'));
  common = [
    '--data', data,
    '--backbone', tiny.backbone, '--feature-layer', tiny.featureLayer, '--preprocess', tiny.preprocess,
    '--cache-dir', join(temp.path, 'cache'), '--device', 'wasm',
    '--lr', '0.001,0.01,0.05', '--epochs', '3', '--batch-size', '16', '--seed', '3',
  ];
});
after(() => temp.remove());

const HOOKED_BIN = fileURLToPath(new URL('./test-train-bin.ts', import.meta.url));

function trainBin(args: string[], hooks: Record<string, string> = {}) {
  const entry = Object.keys(hooks).length ? ['--conditions=imgpipe-source', '--import', import.meta.resolve('tsx'), HOOKED_BIN] : [BIN];
  return execa(process.execPath, [...entry, ...args], { env: { IMGPIPE_NO_WEBGPU: '1', ...hooks }, reject: false });
}

async function trialsWithoutTimes(runDir: string): Promise<string[][]> {
  const lines = (await readFile(join(runDir, 'trials.csv'), 'utf8')).trim().split('\n').map((l) => l.split(','));
  const col = lines[0]!.indexOf('seconds');
  return lines.map((cells) => cells.filter((_, i) => i !== col));
}

async function trialLines(runDir: string): Promise<{ event: string; trial: string; epoch?: number }[]> {
  const text = await readFile(join(runDir, 'trials.jsonl'), 'utf8').catch(() => '');
  return text.split('\n').filter((l) => l.endsWith('}')).map((l) => JSON.parse(l));
}

test('a sweep killed mid-way and rerun with the same command ends with the same trials.csv as an uninterrupted one', async () => {
  const whole = await trainBin([...common, '--layer-size', '4,16', '--out', join(temp.path, 'whole')]);
  assert.equal(whole.exitCode, 0, whole.stderr);
  const pointer = JSON.parse(whole.stdout);
  assert.equal(pointer.kind, 'run');
  assert.equal(pointer.best, join(pointer.path, 'model'));
  assert.match(whole.stderr, /trial 6\/6/);

  const out = join(temp.path, 'killed');
  const killed = trainBin([...common, '--layer-size', '4,16', '--out', out], { IMGPIPE_TEST_EPOCH_DELAY_MS: '150' });
  let runDir: string | undefined;
  // Kill once two trials are recorded and the third has started.
  for (let i = 0; i < 600 && killed.exitCode === null; i++) {
    await new Promise((r) => setTimeout(r, 50));
    const { readdir } = await import('node:fs/promises');
    const dirs = (await readdir(out).catch(() => [] as string[])).filter((name) => !name.startsWith('.')); // skip lock files
    if (dirs.length === 0) continue;
    runDir = join(out, dirs[0]!);
    const lines = await trialLines(runDir);
    if (lines.filter((l) => l.event === 'trial').length >= 2 && lines.some((l) => l.event === 'epoch' && l.trial === 't003')) break;
  }
  killed.kill('SIGKILL');
  const result = await killed;
  assert.equal(result.signal, 'SIGKILL', 'the sweep was killed before it finished');
  const before = await trialLines(runDir!);
  const trialsBefore = before.filter((l) => l.event === 'trial').length;
  assert.ok(trialsBefore >= 2 && trialsBefore < 6, `${trialsBefore} trials recorded before the kill`);
  assert.equal(JSON.parse(await readFile(join(runDir!, 'run.json'), 'utf8')).status, 'running');

  // The same command again, with the dataset pointer on stdin this time: it finds the unfinished run.
  const rerun = await execa(process.execPath, [BIN, ...common.slice(2), '--layer-size', '4,16', '--out', out], {
    input: `${JSON.stringify({ kind: 'dataset', path: common[1] })}\n`,
    env: { IMGPIPE_NO_WEBGPU: '1' },
    reject: false,
  });
  assert.equal(rerun.exitCode, 0, rerun.stderr);
  assert.match(rerun.stderr, /resuming the unfinished run/);
  assert.equal(JSON.parse(rerun.stdout).path, runDir);
  assert.deepEqual(await trialsWithoutTimes(runDir!), await trialsWithoutTimes(pointer.path));
  const lines = await trialLines(runDir!);
  assert.deepEqual(lines.filter((l) => l.event === 'trial').map((l) => l.trial).sort(), ['t001', 't002', 't003', 't004', 't005', 't006']);
  assert.equal(lines.filter((l) => l.event === 'epoch').length, 18, 'one line per epoch, none duplicated');
  assert.equal(JSON.parse(await readFile(join(runDir!, 'run.json'), 'utf8')).status, 'done');
  const [a, b] = await Promise.all([readFile(join(runDir!, 'model', 'head', 'weights.bin')), readFile(join(pointer.path, 'model', 'head', 'weights.bin'))]);
  assert.ok(a.equals(b), 'the same best head');
});

test('a failing trial is recorded and the sweep exits 0; usage errors exit 2', async () => {
  const run = await trainBin([...common, '--out', join(temp.path, 'fail'), '--layer-size', '4'], { IMGPIPE_TEST_FAIL_TRIALS: 't002' });
  assert.equal(run.exitCode, 0, run.stderr);
  assert.match(run.stderr, /t002 failed: injected failure/);
  const csv = await readFile(join(JSON.parse(run.stdout).path, 'trials.csv'), 'utf8');
  assert.match(csv, /t002,failed/);
  assert.equal((csv.match(/,ok,/g) ?? []).length, 2);

  const bad = await trainBin([...common, '--out', join(temp.path, 'bad'), '--dropout', '1.5']);
  assert.equal(bad.exitCode, 2);
  assert.match(bad.stderr, /--dropout/);
  assert.equal(bad.stdout, '');
  for (const [args, message] of [
    [['--fine-tune-workers', '2'], /--fine-tune-workers needs --fine-tune all\|bn\|last:N/],
    [['--fine-tune', 'bn', '--fine-tune-workers', '0'], /--fine-tune-workers/],
    [['--fine-tune-patience', '2'], /--fine-tune-patience needs --fine-tune/],
    [['--fine-tune', 'last:0'], /expected --fine-tune to be all, bn, last:N \(N >= 1\) or none, got 'last:0'/],
    [['--fine-tune', 'bn', '--fine-tune-bn-statistics', 'batch'], /fine-tune-bn-statistics, Given: "batch", Choices: "frozen", "update"/],
  ] as const) {
    const flag = await trainBin([...common, '--out', join(temp.path, 'bad'), ...args]);
    assert.equal(flag.exitCode, 2, flag.stderr);
    assert.match(flag.stderr, message);
  }
});
