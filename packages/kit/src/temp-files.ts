import { randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import { readdir, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

/**
 * Temp names and their cleanup. A temp name carries its writer's pid (`.<name>.<pid>.<8 hex>.tmp`), so a later
 * run can tell a leftover of a dead process from a file another live writer is still filling.
 */
const TEMP_NAME = /^\..+\.(\d+)\.[0-9a-f]{8}\.tmp$/;

/** The longest file name (in bytes) Linux, macOS and Windows file systems hold. */
export const NAME_MAX_BYTES = 255;

/**
 * A sibling temp name: same directory (so rename is atomic), hidden, unique per writer. A long final name is cut
 * (on a character boundary) so that the temp name stays within NAME_MAX_BYTES: any name that fits gets a temp name.
 */
export function tempPathFor(finalPath: string): string {
  const suffix = `.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  return join(dirname(finalPath), `.${truncateUtf8(basename(finalPath), NAME_MAX_BYTES - 1 - suffix.length)}${suffix}`);
}

/** The longest prefix of `text` that is at most `bytes` long in UTF-8, never splitting a character. */
function truncateUtf8(text: string, bytes: number): string {
  if (Buffer.byteLength(text) <= bytes) return text;
  let kept = '';
  let size = 0;
  for (const char of text) {
    size += Buffer.byteLength(char);
    if (size > bytes) break;
    kept += char;
  }
  return kept;
}

/** The pid a temp name was made by, or undefined when the name is not one of ours. */
function tempOwner(name: string): number | undefined {
  const match = TEMP_NAME.exec(name);
  return match ? Number(match[1]) : undefined;
}

/** Whether a process with this pid exists on this machine (EPERM: it exists, owned by someone else). */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Remove temp files and directories in `dir` (not below it) left by processes that are gone; returns their names.
 * Safe beside live writers: a name whose pid is alive (or is ours) is kept.
 */
export async function removeStaleTemps(dir: string): Promise<string[]> {
  const names = await readdir(dir).catch(() => [] as string[]);
  const removed: string[] = [];
  for (const name of names) {
    const pid = tempOwner(name);
    if (pid === undefined || pid === process.pid || processAlive(pid)) continue;
    await rm(join(dir, name), { recursive: true, force: true });
    removed.push(name);
  }
  return removed;
}

/** Paths this process must remove if it is stopped by a signal: temp files being written, locks held. */
const live = new Set<string>();

export function trackTemp(path: string): void {
  live.add(path);
}

export function untrackTemp(path: string): void {
  live.delete(path);
}

/**
 * Synchronously remove every tracked path (from a signal handler or 'exit', where nothing async runs). File work
 * already handed to libuv's threads goes on meanwhile: a write can land in a directory being removed (ENOTEMPTY:
 * retried), and a mkdir or rename can create a tracked path just after it was removed, so a second pass follows a
 * moment later.
 */
export function removeTrackedSync(): void {
  if (live.size === 0) return;
  for (const path of live) removeRetryingSync(path);
  pauseSync(SETTLE_MS);
  for (const path of live) removeRetryingSync(path);
  live.clear();
}

/** How long file operations already queued on libuv's threads get to land before the second pass. */
const SETTLE_MS = 50;

function pauseSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/** rmSync, tried again (20 ms apart, for up to half a second) while files keep appearing in the directory. */
function removeRetryingSync(path: string): void {
  for (let attempt = 0; attempt < 25; attempt++) {
    try {
      rmSync(path, { recursive: true, force: true });
      return;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOTEMPTY') return; // best effort while exiting
      pauseSync(20);
    }
  }
}
