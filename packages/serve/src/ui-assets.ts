import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { FailureError, messageOf, STYLESHEET_PATH, type ModelCard } from '@imgpipe/kit';

/** A file of the page, held in memory: served as is, revalidated by its ETag. */
export interface StaticFile {
  body: Buffer;
  contentType: string;
  etag: string;
}

export interface UiAssets {
  /** index.html, served at GET / to browsers. */
  page: StaticFile;
  /** The only files under /ui/, by name. */
  files: ReadonlyMap<string, StaticFile>;
}

// The package root, from src/ (tests through tsx) and from dist/ alike.
const PACKAGE_ROOT = new URL('../', import.meta.url);

export function staticFile(body: Buffer, contentType: string): StaticFile {
  return { body, contentType, etag: `"${createHash('sha256').update(body).digest('base64url').slice(0, 27)}"` };
}

async function read(path: string): Promise<Buffer> {
  try {
    return await readFile(path);
  } catch (error) {
    throw new FailureError(`serve's page: cannot read ${path} (${messageOf(error)}); build it with \`pnpm run build\`, or pass --no-ui`, {
      cause: error,
    });
  }
}

/**
 * Read the page's files: ui/index.html, ui/app.js (compiled from ui/app.ts by `tsc -b` into dist/ui/), and
 * style.css = kit's shared stylesheet followed by ui/page.css (one request, one look with eval's report).
 */
export async function loadUiAssets(): Promise<UiAssets> {
  const at = (relative: string) => fileURLToPath(new URL(relative, PACKAGE_ROOT));
  const [html, shared, page, script] = await Promise.all([
    read(at('ui/index.html')),
    read(STYLESHEET_PATH),
    read(at('ui/page.css')),
    read(at('dist/ui/app.js')),
  ]);
  return {
    page: staticFile(html, 'text/html; charset=utf-8'),
    files: new Map([
      ['style.css', staticFile(Buffer.concat([shared, Buffer.from('\n'), page]), 'text/css; charset=utf-8')],
      ['app.js', staticFile(script, 'text/javascript; charset=utf-8')],
    ]),
  };
}

/** What the page's routes need: its files, and once loaded, the served model's card and local directory. */
export interface UiState {
  assets: UiAssets;
  model?: { card?: ModelCard | undefined; dir?: string | undefined };
}
