import { readdir } from 'node:fs/promises';
import { join, relative, sep } from 'node:path';
import { sha256, sha256File } from '@imgpipe/kit';

/**
 * The identity of a model directory's weights: sha256 over "<relative path> <sha256>" lines of every file except
 * card.json (which eval-model itself updates), sorted by path. Same weights, same hash; any changed byte, another.
 */
export async function modelWeightsSha256(modelDir: string): Promise<string> {
  const files: string[] = [];
  const walk = async (dir: string): Promise<void> => {
    for (const entry of await readdir(dir, { withFileTypes: true })) {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) await walk(path);
      else if (entry.isFile() && !entry.name.startsWith('.')) files.push(relative(modelDir, path).split(sep).join('/'));
    }
  };
  await walk(modelDir);
  const lines: string[] = [];
  for (const file of files.filter((f) => f !== 'card.json').sort()) lines.push(`${file} ${await sha256File(join(modelDir, file))}\n`);
  return sha256(lines.join(''));
}
