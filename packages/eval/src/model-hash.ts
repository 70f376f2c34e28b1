import { join, posix } from 'node:path';
import { sha256File, walkDir, weightsSha256 } from '@imgpipe/kit';

/**
 * The identity of a model directory's weights: sha256 over "<relative path> <sha256>" lines of every file except
 * card.json (which eval-model itself updates) and hidden files, sorted by path. Same weights, same hash; any
 * changed byte, another.
 */
export async function modelWeightsSha256(modelDir: string): Promise<string> {
  const files = (await walkDir(modelDir)).filter((e) => e.kind === 'file' && !posix.basename(e.path).startsWith('.') && e.path !== 'card.json');
  const hashed: { path: string; sha256: string }[] = [];
  for (const { path } of files) hashed.push({ path, sha256: await sha256File(join(modelDir, path)) });
  return weightsSha256(hashed);
}
