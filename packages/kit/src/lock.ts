import { hostname } from 'node:os';
import { mkdir, open, readdir, readFile, rename, rm } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { ImgpipeError, UsageError } from './errors.js';
import { processAlive, tempPathFor, trackTemp, untrackTemp } from './temp-files.js';
import { describeFileError } from './file-errors.js';

/** Another process holds the lock: exit 75 (EX_TEMPFAIL, "try again later"), as scripts/pipeline.sh's flock. */
export const EXIT_LOCKED = 75;

export class LockedError extends ImgpipeError {
  constructor(message: string) {
    super(message, EXIT_LOCKED);
  }
}

interface LockOwner {
  pid: number;
  hostname: string;
  started: string;
  tool: string;
}

export interface Lock {
  readonly path: string;
  release(): Promise<void>;
}

interface LockOptions {
  /** What is locked, for messages: "run directory", "dataset build", "download destination". */
  what: string;
  /** The flag that names the target, for messages (e.g. --out). */
  flag: string;
  /** How the target is shown after the flag (default: the target path). */
  shown?: string;
  /** Wait up to this many seconds for the holder to finish (default 0: fail at once). */
  waitSeconds?: number;
}

/** The lock file of a target: beside it (`.<name>.lock`), so replacing the target directory keeps the lock. */
export function lockPathFor(target: string): string {
  const full = resolve(target);
  return join(dirname(full), `.${basename(full)}.lock`);
}

/**
 * Take the lock of `target` (O_EXCL create of its lock file holding pid, hostname and start time). A lock left by
 * a dead process on this host is taken over; one held by a live process (or by another host) is a LockedError,
 * after waiting up to `waitSeconds`. The lock is released by `release()`, on normal exit and on SIGINT/SIGTERM.
 */
export async function acquireLock(target: string, options: LockOptions): Promise<Lock> {
  const path = lockPathFor(target);
  await mkdir(dirname(path), { recursive: true }).catch((error: NodeJS.ErrnoException) => {
    // A file where a directory must go is named as such; any other failure to write there is notWritable's.
    if (error.code !== 'EEXIST' && error.code !== 'ENOTDIR') notWritable(error, target, options);
    throw new UsageError(
      `${options.flag} ${options.shown ?? target}: cannot create the directory ${dirname(path)}: a file is in the way${error.path && error.path !== dirname(path) ? ` (at ${error.path})` : ''}; pass a path under a writable directory`,
      { cause: error },
    );
  });
  const owner: LockOwner = {
    pid: process.pid,
    hostname: hostname(),
    started: new Date().toISOString(),
    tool: basename(process.argv[1] ?? 'imgpipe').replace(/\.[cm]?[jt]s$/, ''),
  };
  const deadline = Date.now() + (options.waitSeconds ?? 0) * 1000;
  for (;;) {
    try {
      const handle = await open(path, 'wx');
      try {
        await handle.writeFile(`${JSON.stringify(owner)}\n`);
      } catch (error) {
        // A lock file without its owner (the disk is full) would look held forever: remove it.
        await handle.close().catch(() => undefined);
        await rm(path, { force: true });
        throw describeFileError(error, path);
      }
      await handle.close();
      trackTemp(path);
      let released = false;
      return {
        path,
        async release() {
          if (released) return;
          released = true;
          untrackTemp(path);
          await rm(path, { force: true });
        },
      };
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') notWritable(error, target, options);
    }
    const holder = await readOwner(path);
    if (holder?.pid === -1) continue; // released between our create and our read: try again
    if (holder === undefined || (holder.hostname === owner.hostname && !processAlive(holder.pid))) {
      await takeOver(path, holder);
      continue;
    }
    if (Date.now() >= deadline) {
      const wait = options.waitSeconds ? ` after waiting ${options.waitSeconds}s` : '';
      throw new LockedError(
        `${options.flag} ${options.shown ?? target}: the ${options.what} is locked by ${holder.tool} (pid ${holder.pid} on ${holder.hostname}, since ${holder.started})${wait}; ` +
          `wait for it to finish or pass --wait-lock SECONDS (if that process is gone, remove ${path})`,
      );
    }
    await new Promise((done) => setTimeout(done, Math.min(500, Math.max(10, deadline - Date.now()))));
  }
}

/** The lock is the first thing a tool writes under its target: a directory it cannot write is a usage error naming it. */
function notWritable(error: unknown, target: string, options: LockOptions): never {
  const code = (error as NodeJS.ErrnoException).code;
  if (!code || !['EACCES', 'EPERM', 'EROFS', 'ENOTDIR', 'ENOENT', 'EEXIST'].includes(code)) throw error;
  const why =
    code === 'EROFS'
      ? 'on a read-only file system'
      : code === 'ENOTDIR' || code === 'EEXIST'
        ? 'a file is in the way'
        : code === 'ENOENT'
          ? 'a directory on the way is missing'
          : 'permission denied';
  throw new UsageError(
    `${options.flag} ${options.shown ?? target}: not writable (${why}: ${(error as Error).message}); pick a directory you can write`,
    { cause: error },
  );
}

async function readOwner(path: string): Promise<LockOwner | undefined> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return { pid: -1, hostname: '', started: '', tool: '' }; // released meanwhile: retry
    throw error;
  }
  try {
    const value = JSON.parse(text) as LockOwner;
    return Number.isInteger(value.pid) && typeof value.hostname === 'string' ? value : undefined;
  } catch {
    // A holder killed between create and write leaves an empty file; a live holder writes it within microseconds.
    return text === '' ? await emptyLockAge(path) : undefined;
  }
}

async function emptyLockAge(path: string): Promise<LockOwner | undefined> {
  await new Promise((done) => setTimeout(done, 50));
  const again = await readFile(path, 'utf8').catch(() => '');
  try {
    return again === '' ? undefined : (JSON.parse(again) as LockOwner);
  } catch {
    return undefined;
  }
}

/**
 * Remove lock files in `dir` (not below it) left by processes of this host that are gone: a process killed before
 * it wrote anything it could resume leaves a lock no later run takes again. Live and foreign-host locks are kept.
 */
export async function removeStaleLocks(dir: string): Promise<string[]> {
  const names = await readdir(dir).catch(() => [] as string[]);
  const removed: string[] = [];
  for (const name of names.filter((n) => n.startsWith('.') && n.endsWith('.lock'))) {
    const path = join(dir, name);
    const holder = await readOwner(path).catch(() => undefined);
    if (!holder || holder.pid === -1 || holder.hostname !== hostname() || processAlive(holder.pid)) continue;
    await takeOver(path, holder);
    removed.push(name);
  }
  return removed;
}

/** Move a stale lock aside (one of several racing processes wins the rename), then remove it. */
async function takeOver(path: string, holder: LockOwner | undefined): Promise<void> {
  const aside = tempPathFor(path);
  try {
    await rename(path, aside);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw error;
  }
  // If a live process re-took the lock between our read and the rename, put its lock back.
  const moved = await readOwner(aside);
  if (moved && moved.pid !== holder?.pid && processAlive(moved.pid)) {
    await rename(aside, path).catch(() => undefined);
    return;
  }
  await rm(aside, { force: true });
}
