// End-to-end: the real bin (packages/train/bin/train.js -> dist/main.js; run `npx tsc -b` first), and where a test
// needs a trial to fail or a sweep slow enough to kill, the same CLI with test hooks injected (test-train-bin.ts:
// IMGPIPE_TEST_EPOCH_DELAY_MS pauses after each epoch, IMGPIPE_TEST_FAIL_TRIALS fails trial ids as a crash would).
import assert from 'node:assert/strict';
import { chmod, mkdir, readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { sha256File } from '@imgpipe/kit';
import { buildTinyConvBackbone, makeTempDir, type TempDir } from '@imgpipe/test-utils';
import { TEST_SIZE, tinyBackbone, writeLearnableDataset } from '@imgpipe/test-utils';

const BIN = fileURLToPath(new URL('../bin/train.js', import.meta.url));
let temp: TempDir;
let common: string[];

before(async () => {
  temp = await makeTempDir('imgpipe-train-e2e-');
  const data = await writeLearnableDataset(join(temp.path, 'data'));
  const tiny = await tinyBackbone(join(temp.path, 'backbone'));
  common = [
    '--data',
    data,
    '--backbone',
    tiny.backbone,
    '--feature-layer',
    tiny.featureLayer,
    '--preprocess',
    tiny.preprocess,
    '--cache-dir',
    join(temp.path, 'cache'),
    '--device',
    'wasm',
    '--lr',
    '0.001,0.01,0.05',
    '--epochs',
    '3',
    '--batch-size',
    '16',
    '--seed',
    '3',
  ];
});
after(() => temp.remove());

const HOOKED_BIN = fileURLToPath(new URL('./test-train-bin.ts', import.meta.url));

function trainBin(args: string[], hooks: Record<string, string> = {}) {
  const entry = Object.keys(hooks).length ? ['--conditions=imgpipe-source', '--import', import.meta.resolve('tsx'), HOOKED_BIN] : [BIN];
  return execa(process.execPath, [...entry, ...args], { env: { IMGPIPE_NO_WEBGPU: '1', ...hooks }, reject: false });
}

async function trialsWithoutTimes(runDir: string): Promise<string[][]> {
  const lines = (await readFile(join(runDir, 'trials.csv'), 'utf8'))
    .trim()
    .split('\n')
    .map((l) => l.split(','));
  const col = lines[0]!.indexOf('seconds');
  return lines.map((cells) => cells.filter((_, i) => i !== col));
}

async function trialLines(runDir: string): Promise<{ event: string; trial: string; epoch?: number }[]> {
  const text = await readFile(join(runDir, 'trials.jsonl'), 'utf8').catch(() => '');
  return text
    .split('\n')
    .filter((l) => l.endsWith('}'))
    .map((l) => JSON.parse(l));
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
  assert.deepEqual(
    lines
      .filter((l) => l.event === 'trial')
      .map((l) => l.trial)
      .sort(),
    ['t001', 't002', 't003', 't004', 't005', 't006'],
  );
  assert.equal(lines.filter((l) => l.event === 'epoch').length, 18, 'one line per epoch, none duplicated');
  assert.equal(JSON.parse(await readFile(join(runDir!, 'run.json'), 'utf8')).status, 'done');
  const [a, b] = await Promise.all([
    readFile(join(runDir!, 'model', 'head', 'weights.bin')),
    readFile(join(pointer.path, 'model', 'head', 'weights.bin')),
  ]);
  assert.ok(a.equals(b), 'the same best head');
});

/** Start the command slowly, and SIGKILL it once `trials` trials are recorded in its run directory under `out`. */
async function killAfterTrials(args: string[], out: string, trials: number): Promise<string> {
  const killed = trainBin(args, { IMGPIPE_TEST_EPOCH_DELAY_MS: '150' });
  let runDir: string | undefined;
  for (let i = 0; i < 600 && killed.exitCode === null; i++) {
    await new Promise((r) => setTimeout(r, 50));
    const dirs = (await readdir(out).catch(() => [] as string[])).filter((name) => !name.startsWith('.'));
    if (dirs.length === 0) continue;
    runDir = join(out, dirs[0]!);
    if ((await trialLines(runDir)).filter((l) => l.event === 'trial').length >= trials) break;
  }
  killed.kill('SIGKILL');
  const result = await killed;
  assert.equal(result.signal, 'SIGKILL', `the sweep was killed before it finished: ${result.stderr}`);
  return runDir!;
}

test('a killed run whose backbone file was then replaced in place is not resumed: a new run, or --resume refused naming the backbone', async () => {
  const dir = join(temp.path, 'swapped-backbone');
  const first = await buildTinyConvBackbone({ dir, inputSize: TEST_SIZE, format: 'onnx', seed: 1 });
  const out = join(temp.path, 'swapped');
  const args = [...common.map((arg, i) => (common[i - 1] === '--backbone' ? first.path : arg)), '--layer-size', '4', '--out', out];
  const killedDir = await killAfterTrials(args, out, 1);
  const oldSha = await sha256File(first.path);
  await buildTinyConvBackbone({ dir, inputSize: TEST_SIZE, format: 'onnx', seed: 9 });
  const newSha = await sha256File(first.path);
  assert.notEqual(newSha, oldSha);

  const resumed = await trainBin([...args, '--resume', killedDir]);
  assert.equal(resumed.exitCode, 2, resumed.stderr);
  assert.match(
    resumed.stderr,
    new RegExp(
      `--resume ${killedDir}: that run was started with other inputs: the backbone's content .*${oldSha.slice(0, 12)}.* -> ${newSha.slice(0, 12)}`,
    ),
  );
  assert.equal(resumed.stdout, '');

  const rerun = await trainBin(args);
  assert.equal(rerun.exitCode, 0, rerun.stderr);
  assert.match(
    rerun.stderr,
    new RegExp(`not resuming the unfinished run ${killedDir} of this command: its inputs changed since \\(the backbone's content`),
  );
  const runDir = JSON.parse(rerun.stdout).path;
  assert.notEqual(runDir, killedDir);
  assert.equal((await trialLines(runDir)).filter((l) => l.event === 'trial').length, 3, 'every trial trained on the new backbone');
  const card = JSON.parse(await readFile(join(runDir, 'model', 'card.json'), 'utf8'));
  assert.equal(card.backbone.sha256, newSha);
  const run = JSON.parse(await readFile(join(runDir, 'run.json'), 'utf8'));
  assert.equal(run.inputs.backbone_sha256, newSha);
  assert.equal(JSON.parse(await readFile(join(killedDir, 'run.json'), 'utf8')).status, 'running', 'the old run is left as it was');
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

test('repeated list flags are one list; a repeated single-value flag is one clear error; no ONNX Runtime debug log is left behind', async () => {
  const tmp = join(temp.path, 'tmpdir');
  await mkdir(tmp);
  const withoutLr = common.filter((arg, i) => arg !== '--lr' && common[i - 1] !== '--lr');
  const child = execa(
    process.execPath,
    [BIN, ...withoutLr, '--lr', '0.001', '--lr', '0.01,0.05', '--layer-size', '4', '--out', join(temp.path, 'repeated')],
    {
      env: { IMGPIPE_NO_WEBGPU: '1', TMPDIR: tmp },
      reject: false,
    },
  );
  const run = await child;
  assert.equal(run.exitCode, 0, run.stderr);
  const rows = (await readFile(join(JSON.parse(run.stdout).path, 'trials.csv'), 'utf8')).trim().split('\n').slice(1);
  assert.deepEqual(
    rows.map((row) => row.split(',')[2]),
    ['0.001', '0.01', '0.05'],
  );
  // onnxruntime-node 1.30 opens $TMPDIR/mat-debug-<pid>.log in every process that creates a session, and leaves it.
  assert.deepEqual(
    (await readdir(tmp)).filter((name) => name.startsWith('mat-debug-')),
    [],
    `the backbone's process (pid ${child.pid}) left a debug log`,
  );

  for (const [args, message] of [
    [['--seed', '1'], /expected --seed once, got it 2 times \('3', '1'\); give one value/], // common has --seed 3
    [['--out', 'a', '--out', 'b'], /expected --out once, got it 2 times \('a', 'b'\)/],
  ] as const) {
    const repeated = await trainBin([...common, ...args]);
    assert.equal(repeated.exitCode, 2, repeated.stderr);
    assert.match(repeated.stderr, message);
    assert.doesNotMatch(repeated.stderr, /comma-separated list/);
  }
});

test('an --out train cannot write is exit 2 naming it, with no stack trace', async () => {
  // Root writes anywhere: the command then runs as nobody (the data stays readable to it).
  const asUser = process.getuid?.() === 0 ? ['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups', process.execPath] : [process.execPath];
  await chmod(temp.path, 0o755);
  const readOnly = join(temp.path, 'read-only');
  await mkdir(readOnly, { mode: 0o555 });
  await chmod(readOnly, 0o555);
  for (const out of [join(readOnly, 'runs'), readOnly]) {
    const [command, ...prefix] = asUser;
    const run = await execa(command!, [...prefix, BIN, ...common, '--out', out], { env: { IMGPIPE_NO_WEBGPU: '1', HOME: temp.path }, reject: false });
    assert.equal(run.exitCode, 2, run.stderr);
    assert.match(run.stderr, new RegExp(`train: error: --out ${out}: not writable \\(permission denied: EACCES`));
    assert.doesNotMatch(run.stderr, /^\s+at /m, 'no stack trace');
  }
});
