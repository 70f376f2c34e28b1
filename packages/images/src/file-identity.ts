import { realpathSync } from 'node:fs';
import { sha256FileSync } from '@imgpipe/kit/files';

/** A file's identity for finding duplicates: its real path (links resolved) and the sha256 of a regular file's bytes. */
export interface FileIdentity {
  real: string;
  /** undefined when it is not a regular file or cannot be read (decoding then says why). */
  content: string | undefined;
}

/** The file's identity, read on the calling thread; a file that cannot be resolved or read has none of that part. */
export function identifyFile(path: string): FileIdentity {
  return { real: realPathOf(path), content: contentOf(path) };
}

/** The path with links resolved; a missing file keeps its path (decoding rejects it). */
export function realPathOf(path: string): string {
  try {
    return realpathSync(path);
  } catch {
    return path;
  }
}

/** sha256 of a regular file's bytes; undefined for anything else or a file that cannot be read. */
export function contentOf(path: string): string | undefined {
  try {
    // Opened without blocking and read only when it is a regular file: a FIFO or /dev/zero cannot hold it up.
    return sha256FileSync(path);
  } catch {
    return undefined;
  }
}
