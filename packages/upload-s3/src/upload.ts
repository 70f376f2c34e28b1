import { createHash } from 'node:crypto';
import { readdir, stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import pLimit from 'p-limit';
import { contentTypeOf, digestFile, formatS3Uri, headObject, isMd5Etag, joinKey, uploadObject, type S3Client } from '@imgpipe/s3';
import { createProgress, InputError, sha256, writePointer, type Logger, type Pointer } from '@imgpipe/kit';
import { LOAD_MODEL_SNIPPET, SNIPPET_NAME } from './snippet.js';

export interface UploadS3Options {
  /** A run directory (results.csv, model/, eval files) or a model directory (card.json). */
  dir: string;
  client: S3Client;
  bucket: string;
  /** Key prefix; objects land at s3://bucket/prefix/... */
  prefix: string;
  concurrency?: number;
  retries?: number;
  /** Multipart part size in bytes (objects above it go up in parts; at most 10 MiB). */
  partSize?: number;
  stdout: NodeJS.WritableStream;
  stderr?: NodeJS.WritableStream;
  cwd: string;
  log: Logger;
}

export interface UploadItem {
  /** Path relative to the run directory, or the snippet's name. */
  name: string;
  key: string;
  uri: string;
  status: 'uploaded' | 'skipped';
  bytes: number;
}

export interface UploadSummary {
  items: UploadItem[];
  pointer: Pointer;
}

/** Files of a run directory worth publishing besides model/ (each only when present). */
const RUN_FILES = ['results.csv', 'eval.json', 'report.html', 'predictions.csv', 'run.json', 'trials.csv', 'trials.jsonl'];
const RUN_DIRS = ['plots'];

async function isFile(path: string): Promise<boolean> {
  return stat(path).then((s) => s.isFile(), () => false);
}

async function filesUnder(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true }).catch(() => []);
  return entries
    .filter((entry) => entry.isFile() && !entry.name.startsWith('.'))
    .map((entry) => join(entry.parentPath, entry.name).slice(dir.length + 1).split('\\').join('/'))
    .sort();
}

/** What to upload from a run (or model) directory: [relative local path, relative key]. */
export async function planUpload(dir: string): Promise<{ local: string; name: string }[]> {
  if (!(await stat(dir).then((s) => s.isDirectory(), () => false))) {
    throw new InputError(`${dir}: no such directory (pass --run DIR of a trained run, or pipe train/eval-model's pointer in)`);
  }
  if (await isFile(join(dir, 'model', 'card.json'))) {
    const plan: { local: string; name: string }[] = [];
    for (const file of RUN_FILES) if (await isFile(join(dir, file))) plan.push({ local: join(dir, file), name: file });
    for (const sub of ['model', ...RUN_DIRS]) {
      for (const file of await filesUnder(join(dir, sub))) plan.push({ local: join(dir, sub, file), name: `${sub}/${file}` });
    }
    return plan;
  }
  if (await isFile(join(dir, 'card.json'))) {
    return (await filesUnder(dir)).map((file) => ({ local: join(dir, file), name: `model/${file}` }));
  }
  throw new InputError(`${dir}: neither a run directory (no model/card.json) nor a model directory (no card.json); pass --run DIR of a trained run`);
}

/**
 * Publish a run to s3://bucket/prefix/: results.csv, model/ unchanged, evaluation files and plots when present,
 * and load_model.mjs. An object already there with the same content (sha256 metadata, or size and MD5 ETag) is
 * not sent again. Prints one JSON pointer line listing every object's URI.
 */
export async function runUploadS3(options: UploadS3Options): Promise<UploadSummary> {
  const { client, bucket, log } = options;
  const dir = resolve(options.cwd, options.dir);
  const prefix = options.prefix.replace(/^\/+/, '');
  const plan = await planUpload(dir);
  if (!plan.some((p) => p.name === 'results.csv') && plan.some((p) => p.name === 'model/card.json')) {
    log.warn('%s has no results.csv; uploading the rest', options.dir);
  }
  const snippet = Buffer.from(LOAD_MODEL_SNIPPET, 'utf8');
  const sources: { name: string; source: { path: string } | { bytes: Uint8Array } }[] = [
    ...plan.map((p) => ({ name: p.name, source: { path: p.local } })),
    { name: SNIPPET_NAME, source: { bytes: snippet } },
  ];
  const totalBytes = (await Promise.all(plan.map((p) => stat(p.local).then((s) => s.size)))).reduce((a, b) => a + b, snippet.length);
  const progress = createProgress({ label: 'upload', total: sources.length, unit: 'files', quiet: log.quiet, ...(options.stderr ? { stream: options.stderr } : {}) });
  const retry = { retries: options.retries ?? 5, log };
  const limit = pLimit(options.concurrency ?? 8);
  let sent = 0;
  const items = await Promise.all(
    sources.map(({ name, source }) =>
      limit(async (): Promise<UploadItem> => {
        const key = joinKey(prefix, name);
        const uri = formatS3Uri(bucket, key);
        const digest =
          'path' in source
            ? await digestFile(source.path)
            : { size: source.bytes.length, md5: createHash('md5').update(source.bytes).digest('hex'), sha256: sha256(source.bytes) };
        const existing = await headObject(client, bucket, key, retry);
        const same =
          existing !== undefined &&
          existing.size === digest.size &&
          (existing.metadata.sha256 === digest.sha256 || (isMd5Etag(existing.etag) && existing.etag.toLowerCase() === digest.md5));
        if (same) {
          progress.increment(1);
          return { name, key, uri, status: 'skipped', bytes: 0 };
        }
        await uploadObject(client, bucket, key, source, {
          ...retry,
          contentType: contentTypeOf(name),
          metadata: { sha256: digest.sha256 },
          ...(options.partSize ? { partSize: options.partSize } : {}),
        });
        sent += digest.size;
        progress.increment(1, `${(sent / 1e6).toFixed(1)} MB`);
        return { name, key, uri, status: 'uploaded', bytes: digest.size };
      }),
    ),
  );
  progress.finish(`${(sent / 1e6).toFixed(1)} of ${(totalBytes / 1e6).toFixed(1)} MB sent`);
  const uploaded = items.filter((i) => i.status === 'uploaded').length;
  log.info('%d objects under %s: %d uploaded, %d already there', items.length, formatS3Uri(bucket, prefix), uploaded, items.length - uploaded);
  const base = formatS3Uri(bucket, prefix === '' || prefix.endsWith('/') ? prefix : `${prefix}/`);
  const uriOf = (name: string) => items.find((i) => i.name === name)?.uri;
  const pointer: Pointer = {
    kind: 'upload',
    uri: base,
    path: options.dir,
    model: `${base}model/`,
    ...(uriOf('results.csv') ? { results: uriOf('results.csv') } : {}),
    snippet: uriOf(SNIPPET_NAME),
    uploaded,
    skipped: items.length - uploaded,
    objects: items.map((i) => i.uri),
  };
  writePointer(options.stdout, pointer);
  return { items, pointer };
}
