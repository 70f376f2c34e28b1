import { isAbsolute, join, relative, resolve } from 'node:path';
import { InputError } from './errors.js';
import { NAME_MAX_BYTES } from './temp-files.js';

/**
 * The one check for a file name that came from a listing someone else wrote (an S3 key below a prefix, a TF.js
 * weightsManifest path, a model card's path) before it becomes a path under `dir`: only plain relative names
 * that resolve inside `dir`. Refused: empty names, NUL bytes, absolute paths, drive letters, backslashes,
 * '..' segments, percent-encoded separators or dots, names of directories, and segments over 255 bytes (no file system holds them). Returns join(dir, name).
 */
export function safeJoin(dir: string, name: string, what = 'file name'): string {
  const shown = JSON.stringify(name);
  const refuse = (why: string) => new InputError(`${what} ${shown} ${why}; refusing to use it as a path`);
  if (typeof name !== 'string' || name === '') throw refuse('is empty');
  if (name.includes('\0')) throw refuse('contains a NUL byte');
  if (name.includes('\\')) throw refuse('contains a backslash');
  if (name.startsWith('/') || isAbsolute(name) || /^[a-zA-Z]:/.test(name)) throw refuse('is an absolute path');
  if (/%(2e|2f|5c|00)/i.test(name)) throw refuse('contains a percent-encoded dot, slash, backslash or NUL');
  const segments = name.split('/');
  if (segments.some((segment) => segment === '..')) throw refuse("has a '..' segment that would leave its directory");
  if (name.endsWith('/')) throw refuse('names a directory, not a file');
  const kept = segments.filter((segment) => segment !== '' && segment !== '.');
  if (kept.length === 0) throw refuse('names no file');
  const long = kept.find((segment) => Buffer.byteLength(segment) > NAME_MAX_BYTES);
  if (long !== undefined) throw refuse(`has a name of ${Buffer.byteLength(long)} bytes, more than the ${NAME_MAX_BYTES} a file system holds`);
  const root = resolve(dir);
  const rel = relative(root, resolve(root, ...kept));
  if (rel === '' || rel.startsWith('..') || isAbsolute(rel)) throw refuse('resolves outside its directory');
  return join(dir, ...kept);
}
