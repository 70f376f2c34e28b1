// scripts/pipeline.sh, the cron entry: the real bins through real pipes against the local S3 server (run
// `npx tsc -b` first). A run holding the lock makes a second one exit 75 without starting; the accuracy gate
// stops the upload (exit 13); a run killed during train stops every stage, leaves no half-written artifact under
// a final name, and the next run finishes the same training run and publishes it.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { listFilesRecursive } from '@imgpipe/test-utils';
import {
  BUCKET,
  CSV_URI,
  hookedBinDir,
  NOISE_CSV_URI,
  PIPELINE,
  REPO,
  runCommand,
  startPipelineFixture,
  type PipelineFixture,
} from './pipeline-fixture.js';

let fixture: PipelineFixture;
before(async () => {
  fixture = await startPipelineFixture('pipeline-cron', 48);
});
after(() => fixture?.close());

const pipelineArgs = (work: string, prefix: string, extra: string[] = []) => [
  PIPELINE,
  '--work',
  work,
  '--csv',
  CSV_URI,
  '--bucket',
  BUCKET,
  '--prefix',
  prefix,
  ...extra,
  '--',
  ...fixture.trainFlags,
];

test('a second run exits 75 while another holds the lock, and starts nothing', async () => {
  const work = join(fixture.temp.path, 'locked');
  await runCommand('mkdir', ['-p', work], { env: {} });
  // flock(1) holds the same lock pipeline.sh takes until we stop it.
  const holder = spawn('flock', ['-n', join(work, '.pipeline.lock'), '-c', 'echo held; exec sleep 60'], {
    stdio: ['ignore', 'pipe', 'inherit'],
    detached: true,
  });
  try {
    await new Promise<void>((resolve, reject) => {
      holder.stdout.once('data', () => resolve());
      holder.once('exit', (code) => reject(new Error(`flock exited ${code} before holding the lock`)));
    });
    const second = await runCommand('bash', pipelineArgs(work, 'locked/'), { env: fixture.env });
    assert.equal(second.code, 75, second.stderr);
    assert.match(second.stderr, /another run holds .*\.pipeline\.lock; not starting/);
    assert.deepEqual((await readdir(work)).sort(), ['.pipeline.lock']);
  } finally {
    process.kill(-holder.pid!, 'SIGTERM'); // flock and its sleep, which holds the lock too
  }
  // Once the holder is gone the lock is free again: the same command gets past it (and fails on a bad flag).
  await new Promise((resolve) => (holder.exitCode === null ? holder.once('exit', resolve) : resolve(null)));
  const after = await runCommand('bash', [PIPELINE, '--work', work, '--no-such-flag'], { env: fixture.env });
  assert.equal(after.code, 2, after.stderr);
  const free = await runCommand('flock', ['-n', join(work, '.pipeline.lock'), 'true'], { env: {} });
  assert.equal(free.code, 0);
});

test('below --min-accuracy eval-model stops the pipe: exit 13, nothing uploaded, no last-upload.json', async () => {
  const work = join(fixture.temp.path, 'gated');
  // Labels that do not depend on the images: about 50% on the test split (24 images here), never 95%.
  const env = { ...fixture.env, IMGPIPE_DATA_TRAIN_PCT: '0.25', IMGPIPE_DATA_VAL_PCT: '0.25', IMGPIPE_DATA_TEST_PCT: '0.5' };
  const result = await runCommand(
    'bash',
    [
      PIPELINE,
      '--work',
      work,
      '--csv',
      NOISE_CSV_URI,
      '--bucket',
      BUCKET,
      '--prefix',
      'gated/',
      '--min-accuracy',
      '0.95',
      '--',
      ...fixture.trainFlags,
    ],
    { env },
  );
  assert.equal(result.code, 13, result.stderr);
  assert.match(result.stderr, /eval-model failed \(exit 1\)/);
  assert.deepEqual(await fixture.keys('gated/'), []);
  assert.equal(existsSync(join(work, 'last-upload.json')), false);
  assert.equal(existsSync(join(work, 'last-upload.json.tmp')), false);
  // The evaluation itself was written (the gate runs after eval.json), and the log names the stage.
  const [run] = await readdir(join(work, 'runs'));
  const evaluation = JSON.parse(await readFile(join(work, 'runs', run!, 'eval.json'), 'utf8')) as { test_accuracy: number };
  assert.ok(evaluation.test_accuracy < 0.95);
  assert.match(await readFile(join(work, 'pipeline.log'), 'utf8'), /eval-model failed with exit 1/);
});

test('SIGTERM during train stops every stage and leaves no half-written artifact; the next run resumes and publishes', async () => {
  const work = join(fixture.temp.path, 'killed');
  // Each epoch waits 400 ms (a test hook injected into train), so the kill lands inside the sweep.
  const bin = await hookedBinDir(join(fixture.temp.path, 'hooked-bin'));
  const child = spawn('bash', pipelineArgs(work, 'killed/'), {
    cwd: REPO,
    env: { ...process.env, ...fixture.env, IMGPIPE_BIN_DIR: bin, IMGPIPE_TEST_EPOCH_DELAY_MS: '400' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const trainLog = join(work, 'logs', '3-train.log');
  const deadline = Date.now() + 180_000;
  while (!(existsSync(trainLog) && /trial 1\/4 t001:/.test(await readFile(trainLog, 'utf8')))) {
    const log = existsSync(trainLog) ? await readFile(trainLog, 'utf8') : '(no train log)';
    assert.ok(Date.now() < deadline && child.exitCode === null, `train never started a trial: ${log}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  child.kill('SIGTERM');
  assert.equal(await exited, 143);

  // Every stage is gone: they held the lock's descriptor, so a free lock means no stage survived.
  const free = await runCommand('flock', ['-n', join(work, '.pipeline.lock'), 'true'], { env: {} });
  assert.equal(free.code, 0, 'a stage still holds the lock');
  // Nothing under a final name is half-written: the dataset is complete (its manifest lists files that exist
  // with their sizes), the run has no model/ or eval.json yet, and no pointer file claims success.
  const manifest = JSON.parse(await readFile(join(work, 'prep', 'manifest.json'), 'utf8')) as {
    splits: Record<string, { pixels: { file: string; bytes: number } }>;
  };
  for (const split of Object.values(manifest.splits)) {
    const { size } = await import('node:fs/promises').then((fs) => fs.stat(join(work, 'prep', split.pixels.file)));
    assert.equal(size, split.pixels.bytes);
  }
  const [run, ...others] = await readdir(join(work, 'runs'));
  assert.deepEqual(others, []);
  const files = await listFilesRecursive(join(work, 'runs', run!));
  assert.ok(!files.some((file) => file.startsWith('model/') || file === 'eval.json'), files.join(', '));
  assert.equal(existsSync(join(work, 'last-upload.json')), false);
  assert.equal(existsSync(join(work, 'last-upload.json.tmp')), false);
  assert.deepEqual(await fixture.keys('killed/'), []);
  assert.match(await readFile(join(work, 'pipeline.log'), 'utf8'), /interrupted by SIGTERM/);

  // The next run finishes that same run directory and publishes it.
  const again = await runCommand('bash', pipelineArgs(work, 'killed/'), { env: fixture.env });
  assert.equal(again.code, 0, again.stderr);
  assert.deepEqual(await readdir(join(work, 'runs')), [run]);
  assert.match(await readFile(join(work, 'logs', '3-train.log'), 'utf8'), /resuming the unfinished run/);
  const pointer = JSON.parse(await readFile(join(work, 'last-upload.json'), 'utf8')) as { kind: string; path: string };
  assert.equal(pointer.kind, 'upload');
  assert.equal(pointer.path, join(work, 'runs', run!));
  const published = await fixture.keys('killed/');
  assert.ok(published.includes('killed/publication.json'), published.join(', '));
  assert.ok(
    published.some((key) => /^killed\/p\/[^/]+\/model\/card\.json$/.test(key)),
    published.join(', '),
  );
});
