import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { Worker } from 'node:worker_threads';
import { signalExitCode } from './signals.js';
import { removeTrackedSync, trackTemp } from './temp-files.js';

const SIGNALS = new URL('./signals.ts', import.meta.url).href;

test('signalExitCode is 128 + the signal number, as a shell reports it', () => {
  assert.equal(signalExitCode('SIGINT'), 130);
  assert.equal(signalExitCode('SIGTERM'), 143);
  assert.equal(signalExitCode('SIGHUP'), 129);
});

test('stopOnSignals aborts the work on SIGINT or SIGTERM and gives the exit status; dispose removes its handlers', async () => {
  // A child whose "work" waits for the abort, then exits with the status stopOnSignals gives.
  const code = `import { stopOnSignals } from ${JSON.stringify(SIGNALS)};
    const stop = stopOnSignals((signal) => process.stderr.write('stopping on ' + signal + '\\n'));
    const other = stopOnSignals(); other.dispose();
    process.stderr.write('listeners ' + process.listenerCount('SIGINT') + ' ' + process.listenerCount('SIGTERM') + '\\n');
    const busy = setInterval(() => {}, 1000); // the work in flight
    process.stdout.write('ready\\n');
    await new Promise((resolve) => stop.signal.addEventListener('abort', resolve));
    clearInterval(busy);
    process.stderr.write('reason ' + stop.signal.reason + ' before ' + (stop.exitCode() ?? 'none') + '\\n');
    stop.dispose();
    process.exitCode = stop.exitCode();`;
  for (const [signal, status] of [
    ['SIGINT', 130],
    ['SIGTERM', 143],
  ] as const) {
    const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', code], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk));
    const exited = new Promise<number | null>((resolve) => child.on('close', resolve));
    await new Promise<void>((resolve) => child.stdout.once('data', () => resolve()));
    child.kill(signal);
    assert.equal(await exited, status, stderr);
    assert.match(stderr, /listeners 1 1\n/, 'one handler per signal; the disposed one is gone');
    assert.match(stderr, new RegExp(`stopping on ${signal}\\nreason ${signal} before ${status}\\n`));
  }
});

test('removeTrackedSync removes a tracked directory even while another thread is still writing into it', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'imgpipe-tracked-'));
  const target = join(dir, 'head.tmp');
  await mkdir(target);
  for (let i = 0; i < 200; i++) await writeFile(join(target, `old-${i}`), 'x');
  // A thread that keeps adding files for 60 ms, as an async write handed to libuv's pool lands during the removal.
  const writer = new Worker(
    `const { writeFileSync } = require('node:fs'); const { join } = require('node:path'); const { target } = require('node:worker_threads').workerData;
     const until = Date.now() + 60; let n = 0;
     while (Date.now() < until) { try { writeFileSync(join(target, 'new-' + n++), 'y'); } catch { break; } }`,
    { eval: true, workerData: { target } },
  );
  await new Promise((resolve) => writer.once('online', resolve));
  trackTemp(target);
  removeTrackedSync();
  await new Promise((resolve) => writer.once('exit', resolve));
  assert.equal(existsSync(target), false, 'the tracked directory is gone');
  await rm(dir, { recursive: true, force: true });
});

test('removeTrackedSync also removes a tracked path created just after its first pass (a mkdir or rename already queued)', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'imgpipe-tracked-late-'));
  const target = join(dir, '.head.tmp');
  const go = new Int32Array(new SharedArrayBuffer(4));
  // The thread waits for the go, then creates the directory 10 ms later, as a queued rename lands after the removal.
  const late = new Worker(
    `const { mkdirSync, writeFileSync } = require('node:fs'); const { join } = require('node:path');
     const { target, go } = require('node:worker_threads').workerData;
     Atomics.wait(go, 0, 0); Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 10);
     mkdirSync(target); writeFileSync(join(target, 'weights.bin'), 'w');`,
    { eval: true, workerData: { target, go } },
  );
  await new Promise((resolve) => late.once('online', resolve));
  trackTemp(target);
  Atomics.store(go, 0, 1);
  Atomics.notify(go, 0);
  removeTrackedSync();
  await new Promise((resolve) => late.once('exit', resolve));
  assert.equal(existsSync(target), false, 'the late directory is gone');
  await rm(dir, { recursive: true, force: true });
});
