import { createHash } from 'node:crypto';
import { closeSync, constants, fstatSync, openSync, readSync, type WriteStream } from 'node:fs';
import { mkdir, open, rename, rm, stat } from 'node:fs/promises';
import { dirname } from 'node:path';
import { pipeline } from 'node:stream/promises';
import type { Readable } from 'node:stream';
import { fsyncDir, fsyncTree } from './durable.js';
import { describeFileError } from './file-errors.js';
import { tempPathFor, trackTemp, untrackTemp } from './temp-files.js';

/** Move a finished, fsynced temp file into place and make the rename itself durable. */
async function commitTemp(temp: string, finalPath: string): Promise<void> {
  await rename(temp, finalPath);
  untrackTemp(temp);
  await fsyncDir(dirname(finalPath));
}

async function discardTemp(temp: string): Promise<void> {
  await rm(temp, { recursive: true, force: true });
  untrackTemp(temp);
}

/** Write a file so that the final name only ever holds complete content (fsynced before the rename). */
export async function writeFileAtomic(finalPath: string, data: string | Uint8Array): Promise<void> {
  await mkdir(dirname(finalPath), { recursive: true });
  const temp = tempPathFor(finalPath);
  trackTemp(temp);
  try {
    const handle = await open(temp, 'w');
    try {
      await handle.writeFile(data);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await commitTemp(temp, finalPath);
  } catch (error) {
    await discardTemp(temp);
    throw describeFileError(error, finalPath);
  }
}

export async function writeJsonAtomic(finalPath: string, value: unknown): Promise<void> {
  await writeFileAtomic(finalPath, `${JSON.stringify(value, null, 2)}\n`);
}

/**
 * Stream a readable into a file atomically; the temp file is removed on any error. The file is opened before the
 * stream starts, so a source that fails at once cannot create the temp file after it was removed.
 */
export async function streamToFileAtomic(source: Readable, finalPath: string): Promise<number> {
  await mkdir(dirname(finalPath), { recursive: true });
  const temp = tempPathFor(finalPath);
  trackTemp(temp);
  let bytes = 0;
  try {
    const handle = await open(temp, 'w');
    // Counted from here: a 'data' listener starts the flow, which must not begin before the file is open.
    source.on('data', (chunk: Buffer) => (bytes += chunk.length));
    try {
      // flush: fsync before the stream closes its file.
      await pipeline(source, handle.createWriteStream({ flush: true }));
    } finally {
      await handle.close().catch(() => undefined);
    }
    await commitTemp(temp, finalPath);
    return bytes;
  } catch (error) {
    source.destroy();
    await discardTemp(temp);
    throw describeFileError(error, finalPath);
  }
}

/** A write stream under a temp name; `commit` fsyncs and renames it into place, `abort` removes it. */
interface AtomicWriter {
  readonly stream: WriteStream;
  commit(): Promise<void>;
  abort(): Promise<void>;
}

export async function openAtomicWriter(finalPath: string): Promise<AtomicWriter> {
  await mkdir(dirname(finalPath), { recursive: true });
  const temp = tempPathFor(finalPath);
  trackTemp(temp);
  const handle = await open(temp, 'w');
  const stream = handle.createWriteStream({ flush: true });
  const closed = new Promise<void>((resolve, reject) => {
    stream.once('close', resolve);
    stream.once('error', reject);
  });
  closed.catch(() => undefined);
  return {
    stream,
    async commit() {
      stream.end();
      try {
        await closed;
        await commitTemp(temp, finalPath);
      } catch (error) {
        throw describeFileError(error, finalPath);
      }
    },
    async abort() {
      stream.destroy();
      await closed.catch(() => undefined);
      await discardTemp(temp);
    },
  };
}

/**
 * Replace a directory with a finished one built elsewhere (same filesystem), as atomically as POSIX allows: the
 * built tree is fsynced, renamed over, and the parent directory fsynced.
 */
export async function replaceDirectory(builtDir: string, finalDir: string): Promise<void> {
  await fsyncTree(builtDir);
  const old = tempPathFor(finalDir);
  const hadOld = await exists(finalDir);
  if (hadOld) {
    trackTemp(old);
    await rename(finalDir, old);
  }
  await rename(builtDir, finalDir);
  await fsyncDir(dirname(finalDir));
  if (hadOld) await discardTemp(old);
}

export async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch {
    return false;
  }
}

/** Whether `path` is a regular file (links followed): not missing, a directory, a FIFO or a device. */
export async function isRegularFile(path: string): Promise<boolean> {
  return stat(path).then(
    (info) => info.isFile(),
    () => false,
  );
}

export function sha256(data: string | Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

async function sha256Stream(source: AsyncIterable<Uint8Array | string>): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of source) hash.update(chunk);
  return hash.digest('hex');
}

/** Files up to this size are hashed from one read; larger ones stream. */
const WHOLE_READ_BYTES = 1 << 20;

export async function sha256File(path: string): Promise<string> {
  const handle = await open(path, 'r');
  const info = await handle.stat().catch(async (error: unknown) => {
    await handle.close();
    throw error;
  });
  // A small file in one read: a stream's 1 MiB buffer per file made hashing a million small images crawl.
  if (info.isFile() && info.size <= WHOLE_READ_BYTES) {
    try {
      return sha256(await handle.readFile());
    } finally {
      await handle.close();
    }
  }
  // 1 MiB reads: the default 64 KiB makes hashing a large pixel file several times slower.
  return sha256Stream(handle.createReadStream({ highWaterMark: WHOLE_READ_BYTES }));
}

/** One read buffer for sha256FileSync, which never yields while using it: a fresh one per file kept GC busy. */
let hashScratch: Buffer | undefined;

/**
 * sha256 of a regular file, read on the calling thread (for a worker thread that does nothing else); anything but a
 * regular file is refused without being read (opened non-blocking: a FIFO cannot hang it).
 */
export function sha256FileSync(path: string): string {
  const fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
  try {
    const info = fstatSync(fd);
    if (!info.isFile()) throw Object.assign(new Error(`${path}: not a regular file`), { code: 'EISDIR' });
    const hash = createHash('sha256');
    hashScratch ??= Buffer.allocUnsafe(WHOLE_READ_BYTES);
    const buffer = hashScratch;
    for (;;) {
      const read = readSync(fd, buffer, 0, buffer.length, null);
      if (read === 0) break;
      hash.update(buffer.subarray(0, read));
    }
    return hash.digest('hex');
  } finally {
    closeSync(fd);
  }
}
