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
  let real = path;
  try {
    real = realpathSync(path);
  } catch {
    // a missing file keeps its path; decoding rejects it
  }
  let content: string | undefined;
  try {
    // Opened without blocking and read only when it is a regular file: a FIFO or /dev/zero cannot hold it up.
    content = sha256FileSync(path);
  } catch {
    content = undefined;
  }
  return { real, content };
}
