import { FailureError, ImgpipeError } from './errors.js';

/** System errors of writing a file whose message from Node names no path (a write or fsync on an open file). */
const REASONS: Record<string, string> = {
  ENOSPC: 'no space left on the device; free space there, or write elsewhere',
  EDQUOT: 'the disk quota is exceeded; free space there, or write elsewhere',
  EFBIG: 'the file is larger than the file system allows',
  EIO: 'an I/O error (the disk or network file system failed)',
  EROFS: 'the file system is read-only; write elsewhere',
};

/**
 * A write error that names the file: Node's "ENOSPC: no space left on device, write" says neither which file nor
 * where, so a disk-full (quota, read-only, I/O) error becomes a FailureError (exit 1) naming `path`, keeping the
 * original as `cause` and its `code`. Other errors are returned unchanged.
 */
export function describeFileError(error: unknown, path: string, action = 'write'): unknown {
  if (error instanceof ImgpipeError) return error;
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  const reason = code === undefined ? undefined : REASONS[code];
  if (reason === undefined) return error;
  return Object.assign(new FailureError(`${path}: cannot ${action}: ${reason}`, { cause: error }), { code });
}

/** Run `work` (which writes `path`), turning its disk-full and similar errors into ones naming `path`. */
export async function withFileErrors<T>(path: string, work: () => Promise<T>, action = 'write'): Promise<T> {
  try {
    return await work();
  } catch (error) {
    throw describeFileError(error, path, action);
  }
}
