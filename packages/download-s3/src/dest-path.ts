import { lstat, realpath } from 'node:fs/promises';
import { dirname, isAbsolute, relative } from 'node:path';
import { InputError } from '@imgpipe/kit';

/**
 * Refuse to write `file` when a symbolic link would carry the write out of `dest`: the file itself is a link, or a
 * directory on its way resolves outside dest. Links that stay inside dest are fine.
 */
export async function refuseLinkOut(dest: string, file: string): Promise<void> {
  const link = await lstat(file).catch(() => undefined);
  if (link?.isSymbolicLink()) throw new InputError(`${file} is a symbolic link; refusing to write through it (remove the link from --dest)`);
  const root = await realpath(dest).catch(() => undefined);
  if (root === undefined) return; // dest does not exist yet: nothing in it can be a link
  let dir = dirname(file);
  while (true) {
    const real = await realpath(dir).catch(() => undefined);
    if (real !== undefined) {
      const rel = relative(root, real);
      if (rel.startsWith('..') || isAbsolute(rel)) {
        throw new InputError(`${file}: ${dir} resolves to ${real}, outside --dest; refusing to write through a symbolic link that leaves it`);
      }
      return;
    }
    const parent = dirname(dir);
    if (parent === dir) return;
    dir = parent;
  }
}
