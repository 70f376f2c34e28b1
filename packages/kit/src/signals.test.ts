import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { test } from 'node:test';
import { signalExitCode } from './signals.js';

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
  for (const [signal, status] of [['SIGINT', 130], ['SIGTERM', 143]] as const) {
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
