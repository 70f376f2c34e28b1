import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { FailureError, InputError } from './errors.js';
import { silentLogger } from './log.js';
import { PendingReplies, startWorkers, type WorkerStart } from './worker-threads.js';

/** The thread side, built (the entries below are plain JavaScript): `tsc -b` before the tests. */
const WORKER_THREAD = pathToFileURL(fileURLToPath(new URL('../dist/worker-thread.js', import.meta.url))).href;

/** Worker entries written for the test: each does what its name says, then says ready with its workerData. */
const ENTRIES: Record<string, string> = {
  refuses: `parentPort.postMessage({ type: 'error', id: -1, message: 'no model at m.json', usage: false });`,
  crashes: `throw new Error('bad weights');`,
  exits: `process.exit(3);`,
  logs: `parentPort.postMessage({ type: 'log', level: 'info', message: 'loading' });`,
};

describe('startWorkers: threads that say ready, or why not', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'imgpipe-workers-'));
    for (const [name, misbehave] of Object.entries(ENTRIES)) {
      const body = `import { parentPort } from 'node:worker_threads';
import { workerInit } from ${JSON.stringify(WORKER_THREAD)};
${misbehave}
parentPort.postMessage({ type: 'ready', index: workerInit() });
setInterval(() => {}, 1000);`;
      await writeFile(join(dir, `${name}.js`), body);
    }
  });
  after(() => rm(dir, { recursive: true, force: true }));

  const start = (entry: string, workerData: number, count = 2, log = silentLogger) =>
    startWorkers<{ type: 'ready'; index: number }>({
      moduleUrl: pathToFileURL(join(dir, 'caller.js')).href,
      entry,
      count,
      workerData,
      what: 'test model',
      log,
      refused: (message) => new InputError(`refused: ${message}`),
    } satisfies WorkerStart);

  it('waits for every ready message, forwarding log lines first', async () => {
    const lines: string[] = [];
    const { ready, stop } = await start('logs', 1, 2, { ...silentLogger, info: (line) => lines.push(line) });
    assert.deepEqual(ready, [
      { type: 'ready', index: 1 },
      { type: 'ready', index: 1 },
    ]);
    assert.deepEqual(lines, ['loading', 'loading']);
    await stop();
  });

  it("a worker's own reason, a crash and an exit each fail the start with what happened", async () => {
    await assert.rejects(start('refuses', 1), (e: Error) => e instanceof InputError && e.message === 'refused: no model at m.json');
    await assert.rejects(
      start('crashes', 1),
      (e: Error) => e instanceof FailureError && e.message === 'test model: a worker crashed while starting: bad weights',
    );
    await assert.rejects(
      start('exits', 1),
      (e: Error) => e instanceof FailureError && e.message === 'test model: a worker exited with code 3 while starting',
    );
  });
});

describe('stopping threads: never inside their work (a native call ended there aborts the process)', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'imgpipe-workers-stop-'));
    // Each request counts itself started, blocks the thread for its number of milliseconds (as a native call does),
    // then counts itself done: cells 0 and 1 of the shared workerData.
    const body = `import { parentPort } from 'node:worker_threads';
import { answerRequests, workerInit } from ${JSON.stringify(WORKER_THREAD)};
const counts = workerInit();
answerRequests((ms) => {
  Atomics.add(counts, 0, 1);
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
  Atomics.add(counts, 1, 1);
});
parentPort.postMessage({ type: 'ready' });`;
    await writeFile(join(dir, 'blocks.js'), body);
  });
  after(() => rm(dir, { recursive: true, force: true }));

  it('stop waits for the request a thread is inside, and the requests still queued are dropped', async () => {
    const counts = new Int32Array(new SharedArrayBuffer(8));
    const { workers, stop } = await startWorkers({
      moduleUrl: pathToFileURL(join(dir, 'caller.js')).href,
      entry: 'blocks',
      count: 1,
      workerData: counts,
      what: 'test',
      refused: (message) => new InputError(message),
    });
    for (let i = 0; i < 3; i++) workers[0]!.postMessage(400);
    while (Atomics.load(counts, 0) === 0) await new Promise((resolve) => setTimeout(resolve, 1));
    await stop();
    assert.deepEqual([...counts], [1, 1], 'the first request finished, the two queued behind it were dropped');
  });

  it('process.exit waits for the request in progress before the thread ends with the process', () => {
    const script = `import { startWorkers } from ${JSON.stringify(pathToFileURL(fileURLToPath(new URL('../dist/worker-threads.js', import.meta.url))).href)};
const counts = new Int32Array(new SharedArrayBuffer(8));
const { workers } = await startWorkers({
  moduleUrl: ${JSON.stringify(pathToFileURL(join(dir, 'caller.js')).href)}, entry: 'blocks', count: 1, workerData: counts, what: 'test', refused: Error,
});
workers[0].postMessage(400);
workers[0].postMessage(400);
while (Atomics.load(counts, 0) === 0) await new Promise((resolve) => setTimeout(resolve, 1));
process.on('exit', () => console.log('requests started and done at exit:', [...counts].join(' ')));
process.exit(3);`;
    writeFileSync(join(dir, 'exits.mjs'), script);
    const result = spawnSync(process.execPath, [join(dir, 'exits.mjs')], { encoding: 'utf8' });
    assert.equal(result.status, 3, result.stderr);
    assert.equal(result.stdout.trim(), 'requests started and done at exit: 1 1');
  });
});

describe('PendingReplies', () => {
  it('settles each request by its id, once; failAll rejects the rest', async () => {
    const pending = new PendingReplies<string>();
    const a = pending.add();
    const b = pending.add();
    const c = pending.add();
    assert.deepEqual([a.id, b.id, c.id], [0, 1, 2]);
    assert.equal(pending.settle(b.id, { value: 'second' }), true);
    assert.equal(pending.settle(b.id, { value: 'again' }), false, 'an answer counts once');
    assert.equal(pending.settle(7, { value: 'stray' }), false);
    assert.equal(pending.settle(a.id, { error: new Error('worker said no') }), true);
    pending.failAll(new Error('worker crashed'));
    assert.equal(await b.answer, 'second');
    await assert.rejects(a.answer, /worker said no/);
    await assert.rejects(c.answer, /worker crashed/);
    assert.equal(pending.settle(c.id, { value: 'late' }), false);
  });
});
