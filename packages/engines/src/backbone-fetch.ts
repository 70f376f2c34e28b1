import { createWriteStream } from 'node:fs';
import { mkdir, readFile, rename, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { LoadBackboneOptions, ResolvedBackbone } from './backbone-types.js';
import { resolveCacheDir } from './cache-dir.js';
import { FailureError, InputError, messageOf, exists, sha256, tempPathFor, type Logger, createProgress } from '@imgpipe/kit';
import { decodeOnnx } from './onnx-graph.js';
import { readModelJson, weightPaths } from './tfjs-io.js';

type FetchOptions = Pick<LoadBackboneOptions, 'cacheDir' | 'progress'> & { log: Logger };

/**
 * Download a backbone URL (an .onnx file, or a TF.js model.json with its weight files) into the cache, once:
 * <cache>/backbones/<sha256(url)[0:16]>/<file>. Each file is written under a temp name, checked to parse, then
 * renamed; a model.json lands last, so its presence means the whole model is there.
 */
export async function fetchBackbone(url: string, options: FetchOptions): Promise<ResolvedBackbone> {
  const dir = join(resolveCacheDir(options.cacheDir), 'backbones', sha256(url).slice(0, 16));
  const file = basename(new URL(url).pathname) || 'model.onnx';
  const path = join(dir, file);
  const name = file.replace(/\.(onnx|json)$/, '');
  const isJson = file.endsWith('.json');
  if (await exists(path)) {
    options.log.debug(`backbone ${url}: cached at ${path}`);
    return { name, source: url, path, format: isJson ? 'tfjs' : 'onnx' };
  }
  if (isJson) {
    await mkdir(dir, { recursive: true });
    const temp = tempPathFor(path);
    try {
      await streamUrl(url, temp, options);
      const json = await readModelJson(temp).catch((error) => {
        throw new InputError(`${url} is not a TF.js model.json: ${messageOf(error)}`, { cause: error });
      });
      for (const weights of weightPaths(json)) {
        await downloadToFile(new URL(weights, url).href, join(dir, weights), options);
      }
      await rename(temp, path);
    } finally {
      await rm(temp, { force: true });
    }
    return { name, source: url, path, format: 'tfjs' };
  }
  await downloadToFile(url, path, options, (bytes) => void decodeOnnx(bytes, url));
  return { name, source: url, path, format: 'onnx' };
}

/** Download url to path atomically; `check` (on the downloaded bytes) throws to reject it before it lands. */
export async function downloadToFile(url: string, path: string, options: FetchOptions, check?: (bytes: Uint8Array) => void): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  const temp = tempPathFor(path);
  try {
    await streamUrl(url, temp, options);
    if (check) check(new Uint8Array(await readFile(temp)));
    await rename(temp, path);
  } finally {
    await rm(temp, { force: true });
  }
}

async function streamUrl(url: string, target: string, options: FetchOptions): Promise<void> {
  let response: Response;
  try {
    response = await fetch(url, { redirect: 'follow' });
  } catch (error) {
    throw new FailureError(`cannot download ${url}: ${messageOf((error as { cause?: unknown }).cause ?? error)}`, { cause: error });
  }
  if (!response.ok || !response.body) {
    throw new FailureError(`cannot download ${url}: HTTP ${response.status} ${response.statusText}`);
  }
  const total = Number(response.headers.get('content-length')) || undefined;
  const progress = createProgress({
    label: `download ${basename(new URL(url).pathname)}`,
    total,
    unit: 'bytes',
    quiet: options.progress === false || options.log.quiet,
  });
  let done = 0;
  const counter = new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      done += chunk.length;
      progress.update(done);
      callback(null, chunk);
    },
  });
  try {
    await pipeline(Readable.fromWeb(response.body as import('node:stream/web').ReadableStream), counter, createWriteStream(target));
  } catch (error) {
    throw new FailureError(`download of ${url} failed after ${done} bytes: ${messageOf(error)}`, { cause: error });
  }
  if (total !== undefined && done !== total) throw new FailureError(`download of ${url} stopped at ${done} of ${total} bytes`);
  progress.finish();
}
