import { homedir } from 'node:os';
import { join, resolve } from 'node:path';

/** imgpipe's cache: --cache-dir, else $IMGPIPE_CACHE_DIR, else $XDG_CACHE_HOME/imgpipe, else ~/.cache/imgpipe. */
export function resolveCacheDir(explicit?: string, env: NodeJS.ProcessEnv = process.env): string {
  if (explicit) return resolve(explicit);
  if (env.IMGPIPE_CACHE_DIR) return resolve(env.IMGPIPE_CACHE_DIR);
  if (env.XDG_CACHE_HOME) return join(env.XDG_CACHE_HOME, 'imgpipe');
  return join(homedir(), '.cache', 'imgpipe');
}
