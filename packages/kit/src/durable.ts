import { open, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { withFileErrors } from './file-errors.js';

/**
 * The one fsync path: a file's bytes before it is renamed into place, and its directory after, so a power loss
 * leaves either the old name or the complete new file, never an empty file under a final name.
 */
async function fsyncFile(path: string): Promise<void> {
  const handle = await open(path, 'r');
  try {
    await withFileErrors(path, () => handle.sync(), 'sync');
  } finally {
    await handle.close();
  }
}

/** fsync a directory (its entries: a rename or a new file in it). Platforms that cannot open directories skip it. */
export async function fsyncDir(dir: string): Promise<void> {
  let handle: Awaited<ReturnType<typeof open>>;
  try {
    handle = await open(dir, 'r');
  } catch (error) {
    if (['EISDIR', 'EPERM', 'EACCES'].includes((error as NodeJS.ErrnoException).code ?? '')) return;
    throw error;
  }
  try {
    await withFileErrors(dir, () => handle.sync(), 'sync');
  } catch (error) {
    if (!['EINVAL', 'EBADF', 'EPERM'].includes((error as NodeJS.ErrnoException).code ?? '')) throw error;
  } finally {
    await handle.close();
  }
}

/** fsync every file below `dir`, then each directory, deepest first (a directory built before a rename). */
export async function fsyncTree(dir: string): Promise<void> {
  const entries = await readdir(dir, { withFileTypes: true });
  for (const entry of entries) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) await fsyncTree(path);
    else if (entry.isFile()) await fsyncFile(path);
  }
  await fsyncDir(dir);
}
