import { readdir, rmdir } from 'node:fs/promises';
import { join } from 'node:path';
import { exists, readRunJson, removeStaleTemps, RUN_FILE } from '@imgpipe/kit';

// Run directories under train's --out: a new one's name, an unfinished one to resume, abandoned ones to remove.
// The files in a run directory are named, typed, read and written by @imgpipe/kit's run-dir.ts and run-trials.ts.

/** yyyymmdd-hhmm-<4 hex of the key>, unique within `out`. */
export async function newRunDir(out: string, key: string, now = new Date()): Promise<string> {
  const stamp = now.toISOString().replace(/[-:]/g, '').replace('T', '-').slice(0, 13);
  const base = `${stamp}-${key.slice(0, 4)}`;
  for (let n = 0; ; n++) {
    const dir = join(out, n === 0 ? base : `${base}-${n + 1}`);
    if (!(await exists(dir))) return dir;
  }
}

/**
 * Remove run directories under `out` that a killed train left before its first run.json landed: no run.json, and
 * nothing but temp files of processes that are gone. A directory a live writer is filling is kept.
 */
export async function removeAbandonedRunDirs(out: string): Promise<string[]> {
  const entries = await readdir(out, { withFileTypes: true }).catch(() => []);
  const removed: string[] = [];
  for (const entry of entries) {
    if (!entry.isDirectory() || entry.name.startsWith('.')) continue;
    const dir = join(out, entry.name);
    if (await exists(join(dir, RUN_FILE))) continue;
    if ((await removeStaleTemps(dir)).length === 0) continue;
    if ((await readdir(dir)).length > 0) continue;
    await rmdir(dir).catch(() => undefined);
    removed.push(dir);
  }
  return removed;
}

/** The newest run directory under `out` that was started with the same key (or command key) and did not finish. */
export async function findUnfinishedRun(out: string, key: string, by: 'key' | 'command' = 'key'): Promise<string | undefined> {
  const entries = await readdir(out, { withFileTypes: true }).catch(() => []);
  const names = entries
    .filter((e) => e.isDirectory())
    .map((e) => e.name)
    .sort()
    .reverse();
  for (const name of names) {
    const run = await readRunJson(join(out, name));
    const value = by === 'key' ? run?.key : (run?.command_key ?? run?.key);
    if (value === key && run?.status === 'running') return join(out, name);
  }
  return undefined;
}
