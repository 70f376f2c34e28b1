import { lstat, readFile } from 'node:fs/promises';
import { join, posix } from 'node:path';
import { InputError } from './errors.js';
import { sha256, sha256File } from './files.js';
import { walkDir, type DirEntry } from './walk-dir.js';

/** One file of a model directory as card.json lists it: the path relative to the directory, '/'-separated. */
export interface ModelFileEntry {
  path: string;
  size: number;
  sha256: string;
}

/** What checkModelFiles reads from a card (kept structural so this module does not import the card's owner). */
interface CardPaths {
  files?: unknown;
  backbone: { path: string; format?: string };
  head: { path: string };
  onnx?: { path: string };
}

const CARD = 'card.json';

/** A '/'-separated path that stays inside its directory: relative, no '.', '..' or empty segments, no '\\' or NUL. */
export function isInsidePath(path: unknown): path is string {
  if (typeof path !== 'string' || path === '' || path.includes('\\') || path.includes('\0') || path.startsWith('/')) return false;
  return path.split('/').every((segment) => segment !== '' && segment !== '.' && segment !== '..');
}

/**
 * The identity of a model's weights (eval.json's model.sha256): sha256 over "<path> <sha256>" lines of every file
 * but card.json (which eval-model updates) and hidden files, sorted by path. Same weights, same hash.
 */
export function weightsSha256(files: readonly { path: string; sha256: string }[]): string {
  const lines = files
    .filter((file) => file.path !== CARD && !posix.basename(file.path).startsWith('.'))
    .map((file) => `${file.path} ${file.sha256}\n`)
    .sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  return sha256(lines.join(''));
}

/** Every entry under `dir` but directories and card.json, with its kind (links listed, never followed). */
async function entriesBesideCard(dir: string): Promise<DirEntry[]> {
  return (await walkDir(dir)).filter((e) => e.kind !== 'directory' && e.path !== CARD);
}

/** The files list for card.json: every file of `dir` but card.json, sorted, with size and sha256. Links are refused. */
export async function listModelFiles(dir: string): Promise<ModelFileEntry[]> {
  const entries = await entriesBesideCard(dir);
  const odd = entries.find((e) => e.kind !== 'file');
  if (odd)
    throw new InputError(
      `${join(dir, odd.path)}: a model directory holds plain files only, not a ${odd.kind === 'link' ? 'symbolic link' : 'special file'}`,
    );
  return Promise.all(
    entries.map(async ({ path }) => ({ path, size: (await lstat(join(dir, path))).size, sha256: await sha256File(join(dir, path)) })),
  );
}

/** The weight files a TF.js model.json names (weightsManifest paths), relative to the model directory. */
async function weightPaths(dir: string, modelJson: string): Promise<string[]> {
  let json: { weightsManifest?: { paths?: unknown[] }[] };
  try {
    json = JSON.parse(await readFile(join(dir, modelJson), 'utf8')) as typeof json;
  } catch (error) {
    throw new InputError(`${join(dir, modelJson)}: not a readable TF.js model.json (${(error as Error).message})`, { cause: error });
  }
  const base = posix.dirname(modelJson);
  return (json.weightsManifest ?? [])
    .flatMap((group) => group.paths ?? [])
    .map((p) => {
      const joined = typeof p === 'string' && !p.startsWith('/') && !p.includes('\\') ? posix.normalize(posix.join(base, p)) : undefined;
      if (!isInsidePath(joined))
        throw new InputError(`${join(dir, modelJson)}: weights path ${JSON.stringify(p)} points outside the model directory`);
      return joined;
    });
}

/**
 * Verify a model directory against its card's files list: each listed file present with its size and sha256,
 * nothing else there (no extra file, no link), and every path the loader follows (backbone.path, head.path, the
 * weights of TF.js model.json files) inside the directory and listed. InputError naming the file otherwise.
 */
export async function checkModelFiles(dir: string, card: CardPaths): Promise<void> {
  const cardPath = join(dir, CARD);
  if (!Array.isArray(card.files)) {
    throw new InputError(`${cardPath}: lists no files (written by an older imgpipe, or edited); retrain, or re-save the model with this version`);
  }
  const listed = new Map<string, ModelFileEntry>();
  for (const entry of card.files as ModelFileEntry[]) {
    if (!isInsidePath(entry?.path) || entry.path === CARD || !Number.isSafeInteger(entry.size) || !/^[0-9a-f]{64}$/.test(String(entry.sha256))) {
      throw new InputError(`${cardPath}: files entry ${JSON.stringify(entry)} is not a path inside the directory with a size and a sha256`);
    }
    listed.set(entry.path, entry);
  }
  const followed = [
    ['backbone.path', card.backbone.path],
    ['head.path', card.head.path],
    ...(card.onnx ? [['onnx.path', card.onnx.path] as const] : []),
  ] as const;
  for (const [what, path] of followed) {
    if (!isInsidePath(path)) throw new InputError(`${cardPath}: ${what} ${JSON.stringify(path)} points outside the model directory`);
    if (!listed.has(path)) throw new InputError(`${cardPath}: ${what} ${path} is not among the files the card lists`);
  }
  const onDisk = await entriesBesideCard(dir);
  for (const { path, kind } of onDisk) {
    if (kind === 'link') throw new InputError(`${join(dir, path)}: a symbolic link in the model directory; a model directory holds plain files only`);
    if (kind !== 'file') throw new InputError(`${join(dir, path)}: not a regular file; a model directory holds plain files only`);
    if (!listed.has(path))
      throw new InputError(`${join(dir, path)}: not listed in ${cardPath}; remove it, or the directory is not the model the card describes`);
  }
  const present = new Set(onDisk.map((e) => e.path));
  for (const entry of listed.values()) {
    const path = join(dir, entry.path);
    if (!present.has(entry.path)) throw new InputError(`${path}: missing (listed in ${cardPath}); the model directory is incomplete`);
    const size = (await lstat(path)).size;
    if (size !== entry.size) throw new InputError(`${path}: ${size} bytes, ${cardPath} lists ${entry.size}; the file is truncated or changed`);
    const digest = await sha256File(path);
    if (digest !== entry.sha256)
      throw new InputError(
        `${path}: sha256 ${digest.slice(0, 12)}… differs from ${entry.sha256.slice(0, 12)}… in ${cardPath}; the file is corrupt or changed`,
      );
  }
  const modelJsons = [card.head.path, ...(card.backbone.format?.startsWith('tfjs') ? [card.backbone.path] : [])];
  for (const modelJson of modelJsons) {
    for (const weights of await weightPaths(dir, modelJson)) {
      if (!listed.has(weights)) throw new InputError(`${join(dir, modelJson)}: weights file ${weights} is not among the files ${cardPath} lists`);
    }
  }
}
