import { readdir } from 'node:fs/promises';
import { join } from 'node:path';

export type DirEntryKind = 'file' | 'directory' | 'link' | 'other';

/** One entry under a walked directory: its path relative to that directory, '/'-separated, and what it is. */
export interface DirEntry {
  path: string;
  kind: DirEntryKind;
}

/**
 * Every entry under `dir`, at any depth, sorted by path. A symbolic link is listed as a link and never followed,
 * whatever it points to. Rejects like readdir when `dir` itself cannot be read (ENOENT, ENOTDIR).
 */
export async function walkDir(dir: string): Promise<DirEntry[]> {
  const found: DirEntry[] = [];
  const visit = async (rel: string): Promise<void> => {
    for (const entry of await readdir(join(dir, rel), { withFileTypes: true })) {
      const path = rel ? `${rel}/${entry.name}` : entry.name;
      if (entry.isSymbolicLink()) found.push({ path, kind: 'link' });
      else if (entry.isDirectory()) {
        found.push({ path, kind: 'directory' });
        await visit(path);
      } else found.push({ path, kind: entry.isFile() ? 'file' : 'other' });
    }
  };
  await visit('');
  return found.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
}
