import { join, posix } from 'node:path';
import { sha256, sha256File, walkDir } from '@imgpipe/kit';

/**
 * The identity of a model directory's weights: sha256 over "<relative path> <sha256>" lines of every file except
 * card.json (which eval-model itself updates) and hidden files, sorted by path. Same weights, same hash; any
 * changed byte, another.
 */
export async function modelWeightsSha256(modelDir: string): Promise<string> {
  const files = (await walkDir(modelDir)).filter((e) => e.kind === 'file' && !posix.basename(e.path).startsWith('.') && e.path !== 'card.json');
  const lines: string[] = [];
  for (const { path } of files) lines.push(`${path} ${await sha256File(join(modelDir, path))}\n`);
  return sha256(lines.join(''));
}
