import type { Readable } from 'node:stream';
import { InputError, UsageError } from './errors.js';
import { readAll } from './read-all.js';

/** The JSON line a stage prints on stdout to name what it produced, and the next stage reads on stdin. */
export interface Pointer {
  kind: 'dataset' | 'run' | 'model' | 'upload' | (string & {});
  path?: string;
  [key: string]: unknown;
}

function formatPointer(pointer: Pointer): string {
  return `${JSON.stringify(pointer)}\n`;
}

export function writePointer(output: NodeJS.WritableStream, pointer: Pointer): void {
  output.write(formatPointer(pointer));
}

/** Parse pointer lines: the last JSON object line whose kind is one of `kinds` wins. */
function parsePointer(text: string, kinds: readonly string[], source = 'stdin'): Pointer {
  const lines = text
    .split('\n')
    .map((line) => line.trim())
    .filter(Boolean);
  for (const line of lines.reverse()) {
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch {
      continue;
    }
    if (value && typeof value === 'object' && kinds.includes((value as Pointer).kind)) return value as Pointer;
  }
  throw new InputError(
    `${source}: expected a JSON pointer line with kind ${kinds.map((k) => `'${k}'`).join(' or ')}` +
      (lines.length === 0 ? ', got nothing' : `, got: ${lines.at(-1)?.slice(0, 120)}`),
  );
}

/**
 * The directory a stage works on: the flag when given, else the pointer piped on stdin.
 * A terminal on stdin means nothing was piped, which is a usage error naming the flag.
 */
export async function resolveInputPointer(options: {
  flag: string | undefined;
  flagName: string;
  kinds: readonly string[];
  stdin: Readable & { isTTY?: boolean };
}): Promise<Pointer> {
  if (options.flag) return { kind: options.kinds[0] ?? 'path', path: options.flag };
  if (options.stdin.isTTY) {
    throw new UsageError(`no input: pass ${options.flagName} or pipe a ${options.kinds.join('/')} pointer on stdin`);
  }
  return parsePointer((await readAll(options.stdin)).toString('utf8'), options.kinds);
}
