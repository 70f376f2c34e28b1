import { readdir, stat } from 'node:fs/promises';
import { isAbsolute, relative } from 'node:path';
import { DATASET_FILES, MANIFEST_FILE, openDataset, UsageError, type DatasetManifest } from '@imgpipe/kit';

/** What a directory made by prep-data holds; its manifest.json is the mark that prep-data may replace it. */
const OWN_FILES = new Set(DATASET_FILES);

/**
 * Check `--out` before anything is written: it must not be the working directory or hold any input image (a
 * rebuild replaces it), and an existing directory is replaced only when prep-data made it (its manifest.json,
 * and nothing but its own files). Returns the finished dataset's manifest there, if any.
 */
export async function checkOutTarget(dir: string, out: string, cwd: string, inputs: readonly string[]): Promise<DatasetManifest | undefined> {
  if (inside(dir, cwd))
    throw new UsageError(
      `--out ${out} is the working directory or one above it; replacing it would delete what is there; pick a new directory (e.g. --out prep)`,
    );
  const input = inputs.find((path) => inside(dir, path));
  if (input !== undefined)
    throw new UsageError(`--out ${out} holds input image ${input}; a rebuild would delete it; pick a directory of its own (e.g. --out prep)`);
  const info = await stat(dir).catch(() => undefined);
  if (!info) return undefined;
  if (!info.isDirectory()) throw new UsageError(`--out ${out} is a file, not a directory; pick another --out`);
  const names = await readdir(dir);
  if (names.length === 0) return undefined;
  const foreign = names.filter((name) => !OWN_FILES.has(name));
  const ours = names.includes(MANIFEST_FILE);
  if (!ours || foreign.length > 0) {
    const shown = foreign.slice(0, 3).join(', ') + (foreign.length > 3 ? ` and ${foreign.length - 3} more` : '');
    throw new UsageError(
      `--out ${out} holds files prep-data did not write (${shown || names.slice(0, 3).join(', ')}); it only replaces a dataset directory it made; remove them or pick another --out`,
    );
  }
  return openDataset(dir).then(
    (dataset) => dataset.manifest,
    () => undefined,
  );
}

/** Whether `path` is `dir` or below it. */
function inside(dir: string, path: string): boolean {
  const rel = relative(dir, path);
  return rel === '' || (!rel.startsWith('..') && !isAbsolute(rel));
}
