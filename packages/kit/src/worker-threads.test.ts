import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { FailureError, InputError } from './errors.js';
import { silentLogger } from './log.js';
import { PendingReplies, startWorkers, type WorkerStart } from './worker-threads.js';

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
      const body = `import { parentPort, workerData } from 'node:worker_threads';
${misbehave}
parentPort.postMessage({ type: 'ready', index: workerData });
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
    const { workers, ready } = await start('logs', 1, 2, { ...silentLogger, info: (line) => lines.push(line) });
    assert.deepEqual(ready, [
      { type: 'ready', index: 1 },
      { type: 'ready', index: 1 },
    ]);
    assert.deepEqual(lines, ['loading', 'loading']);
    await Promise.all(workers.map((w) => w.terminate()));
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
