import { createHash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, readFile, rename, rm, stat } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { LoadBackboneOptions, ResolvedBackbone } from './backbone-types.js';
import { resolveCacheDir } from './cache-dir.js';
import {
  describeFileError,
  FailureError,
  InputError,
  UsageError,
  messageOf,
  exists,
  safeJoin,
  sha256,
  sha256File,
  tempPathFor,
  writeFileAtomic,
  type Logger,
  createProgress,
} from '@imgpipe/kit';
import { decodeOnnx } from './onnx-graph.js';
import { readModelJson, weightPaths } from './tfjs-io.js';

export type FetchOptions = Pick<LoadBackboneOptions, 'cacheDir' | 'progress' | 'maxDownloadBytes' | 'downloadTimeoutMs'> & { log: Logger };

const DEFAULT_MAX_DOWNLOAD_BYTES = 2 * 1024 ** 3;
const DEFAULT_DOWNLOAD_TIMEOUT_MS = 30_000;

/**
 * Download a backbone URL (an .onnx file, or a TF.js model.json with its weight files) into the cache, once:
 * <cache>/backbones/<sha256(url)[0:16]>/<file>. Each file is written under a temp name, checked to parse, then
 * renamed, with its sha256 beside it (<file>.sha256) and checked on every later load; a model.json lands last, so
 * its presence means the whole model is there. Weight file names must be plain names inside the directory.
 */
export async function fetchBackbone(url: string, options: FetchOptions): Promise<ResolvedBackbone> {
  const dir = join(resolveCacheDir(options.cacheDir), 'backbones', sha256(url).slice(0, 16));
  const file = basename(new URL(url).pathname) || 'model.onnx';
  const path = safeJoin(dir, file, `${url}: file name`);
  const name = file.replace(/\.(onnx|json)$/, '');
  const isJson = file.endsWith('.json');
  if (await exists(path)) {
    await verifyCached(path);
    if (isJson) for (const weights of weightPaths(await readModelJson(path), path)) await verifyCached(safeJoin(dir, weights));
    options.log.debug(`backbone ${url}: cached at ${path}`);
    return { name, source: url, path, format: isJson ? 'tfjs' : 'onnx' };
  }
  if (isJson) {
    await mkdir(dir, { recursive: true });
    const temp = tempPathFor(path);
    try {
      const digest = await streamUrl(url, temp, options);
      const json = await readModelJson(temp).catch((error) => {
        throw new InputError(`${url} is not a TF.js model.json: ${messageOf(error)}`, { cause: error });
      });
      // Every name is checked before the first weight file is fetched, so a bad manifest writes nothing.
      const weights = weightPaths(json, url).map((w) => ({ url: new URL(w, url).href, path: safeJoin(dir, w, `${url}: weightsManifest path`) }));
      for (const w of weights) await downloadToFile(w.url, w.path, options);
      await writeFileAtomic(sidecarOf(path), `${digest}\n`);
      await rename(temp, path);
    } finally {
      await rm(temp, { force: true });
    }
    return { name, source: url, path, format: 'tfjs' };
  }
  await downloadToFile(url, path, options, (bytes) => void decodeOnnx(bytes, url));
  return { name, source: url, path, format: 'onnx' };
}

/** Where the sha256 of a downloaded file is kept: <file>.sha256. */
const sidecarOf = (path: string) => `${path}.sha256`;

/** What a download must be: its sha256, and its size when known. */
interface Pin {
  sha256: string;
  bytes?: number;
}

/**
 * Check a cached download against the sha256 recorded when it landed (and against `pinned` and `pinnedBytes`
 * when given). A file without a record (put there by hand, as the offline help says) passes unless pinned.
 */
export async function verifyCached(path: string, pinned?: string, pinnedBytes?: number): Promise<string | undefined> {
  const recorded = (await readFile(sidecarOf(path), 'utf8').catch(() => undefined))?.trim();
  if (!recorded && !pinned) return undefined;
  if (pinnedBytes !== undefined) {
    const size = (await stat(path)).size;
    if (size !== pinnedBytes)
      throw new FailureError(
        `${path}: ${size} bytes, not the ${pinnedBytes} pinned for this backbone; the cached file is not the published one: delete it to download it again`,
      );
  }
  const actual = await sha256File(path);
  for (const [expected, what] of [
    [recorded, `recorded at download in ${sidecarOf(path)}`],
    [pinned, 'pinned for this backbone'],
  ] as const) {
    if (expected && expected !== actual) {
      throw new FailureError(
        `${path}: sha256 ${actual} does not match ${expected} ${what}; the cached file changed or is not the published one: delete it to download it again`,
      );
    }
  }
  return actual;
}

/**
 * Download url to path atomically, its sha256 recorded beside it; `check` (on the downloaded bytes) throws to
 * reject it before it lands, `pin` is the sha256 (and size) it must have.
 */
export async function downloadToFile(
  url: string,
  path: string,
  options: FetchOptions,
  check?: (bytes: Uint8Array) => void,
  pin?: Pin,
): Promise<string> {
  await mkdir(dirname(path), { recursive: true });
  const temp = tempPathFor(path);
  try {
    const digest = await streamUrl(url, temp, options, pin?.bytes);
    if (pin && digest !== pin.sha256)
      throw new FailureError(`${url}: downloaded sha256 ${digest} does not match the pinned ${pin.sha256}; not using it`);
    if (check) check(new Uint8Array(await readFile(temp)));
    await writeFileAtomic(sidecarOf(path), `${digest}\n`);
    await rename(temp, path);
    return digest;
  } finally {
    await rm(temp, { force: true });
  }
}

/** The limits for downloads: options, else the environment, else the defaults. */
function downloadLimits(options: Pick<FetchOptions, 'maxDownloadBytes' | 'downloadTimeoutMs'>): { maxBytes: number; timeoutMs: number } {
  const fromEnv = (key: string, fallback: number) => {
    const text = process.env[key];
    if (text === undefined || text === '') return fallback;
    const value = Number(text);
    if (!(Number.isFinite(value) && value > 0)) throw new UsageError(`expected ${key} to be a positive number, got '${text}'`);
    return value;
  };
  return {
    maxBytes: options.maxDownloadBytes ?? fromEnv('IMGPIPE_MAX_DOWNLOAD_BYTES', DEFAULT_MAX_DOWNLOAD_BYTES),
    timeoutMs: options.downloadTimeoutMs ?? fromEnv('IMGPIPE_DOWNLOAD_TIMEOUT_MS', DEFAULT_DOWNLOAD_TIMEOUT_MS),
  };
}

/**
 * Stream url into target; fails on a stall (nothing for timeoutMs, connecting included), past maxBytes, or at any
 * size other than `expectedBytes` when given (told by Content-Length before the body is read). Returns the sha256.
 */
async function streamUrl(url: string, target: string, options: FetchOptions, expectedBytes?: number): Promise<string> {
  const limits = downloadLimits(options);
  const { timeoutMs } = limits;
  const maxBytes = expectedBytes === undefined ? limits.maxBytes : Math.min(limits.maxBytes, expectedBytes);
  const abort = new AbortController();
  let why = '';
  let timer: NodeJS.Timeout | undefined;
  const arm = (what: string) => {
    clearTimeout(timer);
    timer = setTimeout(() => {
      why = `${what} for ${timeoutMs} ms (IMGPIPE_DOWNLOAD_TIMEOUT_MS)`;
      abort.abort(new Error(why));
    }, timeoutMs);
  };
  arm('no answer');
  let response: Response;
  try {
    response = await fetch(url, { redirect: 'follow', signal: abort.signal });
  } catch (error) {
    clearTimeout(timer);
    throw new FailureError(`cannot download ${url}: ${why || messageOf((error as { cause?: unknown }).cause ?? error)}`, { cause: error });
  }
  if (!response.ok || !response.body) {
    clearTimeout(timer);
    await response.body?.cancel().catch(() => undefined);
    throw new FailureError(`cannot download ${url}: HTTP ${response.status} ${response.statusText}`);
  }
  const total = Number(response.headers.get('content-length')) || undefined;
  const limit = maxBytes === expectedBytes ? `the ${maxBytes} bytes pinned` : `the download limit of ${maxBytes} bytes (IMGPIPE_MAX_DOWNLOAD_BYTES)`;
  const tooBig = (size: string) => `${url} is ${size}, over ${limit}`;
  if (total !== undefined && expectedBytes !== undefined && total !== expectedBytes) {
    clearTimeout(timer);
    await response.body.cancel().catch(() => undefined);
    throw new FailureError(
      `${url} is ${total} bytes, not the ${expectedBytes} pinned (an unserved Git LFS file answers with its pointer text); not using it`,
    );
  }
  if (total !== undefined && total > maxBytes) {
    clearTimeout(timer);
    await response.body.cancel().catch(() => undefined);
    throw new FailureError(tooBig(`${total} bytes`));
  }
  const progress = createProgress({
    label: `download ${basename(new URL(url).pathname)}`,
    total,
    unit: 'bytes',
    quiet: options.progress === false || options.log.quiet,
  });
  let done = 0;
  const hash = createHash('sha256');
  arm('nothing received');
  const counter = new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      done += chunk.length;
      if (done > maxBytes) {
        why = tooBig(`more than ${maxBytes} bytes`);
        callback(new Error(why));
        return;
      }
      arm('nothing received');
      hash.update(chunk);
      progress.update(done);
      callback(null, chunk);
    },
  });
  try {
    await pipeline(Readable.fromWeb(response.body as import('node:stream/web').ReadableStream), counter, createWriteStream(target));
  } catch (error) {
    const disk = describeFileError(error, target);
    if (disk !== error) throw disk;
    throw new FailureError(`download of ${url} failed after ${done} bytes: ${why || messageOf(error)}`, { cause: error });
  } finally {
    clearTimeout(timer);
  }
  if (total !== undefined && done !== total) throw new FailureError(`download of ${url} stopped at ${done} of ${total} bytes`);
  if (expectedBytes !== undefined && done !== expectedBytes)
    throw new FailureError(`${url} gave ${done} bytes, not the ${expectedBytes} pinned; not using it`);
  progress.finish();
  return hash.digest('hex');
}
