import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { acquireLock, EXIT_LOCKED, LockedError, lockPathFor } from './lock.js';

test('one holder at a time; the lock records pid, host and start; stale and empty locks are taken over', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'imgpipe-lock-'));
  try {
    const target = join(dir, 'run');
    const options = { what: 'run directory', flag: '--out' };
    const tries = await Promise.allSettled(Array.from({ length: 8 }, () => acquireLock(target, options)));
    const held = tries.filter((t) => t.status === 'fulfilled');
    assert.equal(held.length, 1, 'exactly one of eight racing takers holds it');
    for (const t of tries) if (t.status === 'rejected') assert.ok(t.reason instanceof LockedError && t.reason.exitCode === EXIT_LOCKED);
    const owner = JSON.parse(await readFile(lockPathFor(target), 'utf8'));
    assert.equal(owner.pid, process.pid);
    assert.equal(owner.hostname, hostname());
    assert.ok(!Number.isNaN(Date.parse(owner.started)));
    // --wait-lock: a waiter gets it once the holder releases.
    const waiter = acquireLock(target, { ...options, waitSeconds: 5 });
    setTimeout(() => void (held[0] as PromiseFulfilledResult<Awaited<ReturnType<typeof acquireLock>>>).value.release(), 200);
    const second = await waiter;
    await second.release();
    await assert.rejects(readFile(lockPathFor(target)), /ENOENT/);
    // A dead holder's lock, and an empty one (killed between create and write), are taken over.
    await writeFile(lockPathFor(target), JSON.stringify({ pid: 99999999, hostname: hostname(), started: '', tool: 'x' }));
    await (await acquireLock(target, options)).release();
    await writeFile(lockPathFor(target), '');
    await (await acquireLock(target, options)).release();
    assert.deepEqual(await readdir(dir), [], 'nothing left');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
