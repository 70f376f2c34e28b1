import { dirname, join, normalize } from 'node:path';
import { InputError } from '@imgpipe/kit';

/**
 * Which object each local path under --dest belongs to, so two rows can never need the same place: not the same
 * file, and not one object's file where another needs a directory (`a.jpg` and `a.jpg/b.jpg`). A conflict is the
 * input's fault, found before anything is downloaded, and named by both objects.
 */
export class PathClaims {
  readonly #files = new Map<string, string>();
  /** Each directory some claimed file needs, with the first object that needs it. */
  readonly #dirs = new Map<string, string>();
  readonly #root: string;

  constructor(dest: string) {
    this.#root = normalize(join(dest, '.'));
  }

  /** Claim `path` for object `id` (s3 URI without the scheme); the same object may claim its path again. */
  claim(path: string, id: string): void {
    const file = this.#files.get(path);
    if (file !== undefined && file !== id) throw new InputError(`s3://${id} and s3://${file} would both land at ${path}`);
    const below = this.#dirs.get(path);
    if (below !== undefined) throw new InputError(`s3://${id} would land at ${path}, which s3://${below} needs as a directory`);
    const parents: string[] = [];
    for (let dir = dirname(path); dir !== this.#root && dirname(dir) !== dir; dir = dirname(dir)) {
      const owner = this.#files.get(dir);
      if (owner !== undefined) throw new InputError(`s3://${id} needs ${dir} as a directory, where s3://${owner} lands as a file`);
      parents.push(dir);
    }
    this.#files.set(path, id);
    for (const dir of parents) if (!this.#dirs.has(dir)) this.#dirs.set(dir, id);
  }
}
