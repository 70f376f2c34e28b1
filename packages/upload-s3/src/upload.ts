import { readFile, stat } from 'node:fs/promises';
import { basename, join, posix, resolve } from 'node:path';
import pLimit from 'p-limit';
import {
  contentTypeOf,
  copyObject,
  digestFile,
  formatS3Uri,
  headObject,
  joinKey,
  putObjectIf,
  readPublicationVersion,
  uploadObject,
  type S3Client,
} from '@imgpipe/s3';
import {
  createProgress,
  InputError,
  isRegularFile,
  LockedError,
  MODEL_DIR,
  PUBLICATION_FILE,
  PUBLICATION_FORMAT,
  PUBLICATION_LEASE_FILE,
  PUBLICATION_OBJECTS_DIR,
  publicationId,
  RESULTS_CSV,
  sha256,
  UsageError,
  walkDir,
  writePointer,
  type Logger,
  type Pointer,
  type PublicationManifest,
  type PublicationObject,
} from '@imgpipe/kit';
import { acquirePublicationLease, type PublicationLease } from './lease.js';
import { abortUploadsUnder, removeSuperseded, supersededKeys } from './leftovers.js';
import { RUN_DIRS, RUN_FILES, SNIPPET_NAME } from './layout.js';
import { readSnippet } from './snippet.js';

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
  /** Aborting it (SIGINT, SIGTERM) stops the uploads, aborts their multipart uploads and writes no manifest. */
  signal?: AbortSignal;
}

interface UploadItem {
  /** Path relative to the run directory, or the snippet's name. */
  name: string;
  key: string;
  uri: string;
  /** uploaded: sent; copied: copied on the server from the current publication; skipped: already in place. */
  status: 'uploaded' | 'copied' | 'skipped';
  bytes: number;
}

interface UploadSummary {
  items: UploadItem[];
  manifest: PublicationManifest;
  pointer: Pointer;
}

const hidden = (path: string) => posix.basename(path).startsWith('.');

/**
 * The regular files under `dir` ('/'-paths, sorted), but hidden ones (temp files); none when it is missing. A link
 * or special file is refused rather than left out, so a publication is never missing a file the run has.
 */
async function filesUnder(dir: string): Promise<string[]> {
  const entries = await walkDir(dir).catch(() => []);
  const odd = entries.find((e) => (e.kind === 'link' || e.kind === 'other') && !hidden(e.path));
  if (odd) {
    throw new InputError(
      `${join(dir, odd.path)}: a ${odd.kind === 'link' ? 'symbolic link' : 'special file'}; upload-s3 publishes plain files only (put the file itself there)`,
    );
  }
  return entries.filter((e) => e.kind === 'file' && !hidden(e.path)).map((e) => e.path);
}

/** Refuse a model directory that lacks a file its card.json lists (a card without a files list is not checked here). */
async function checkListedFiles(modelDir: string, files: readonly string[]): Promise<void> {
  const card = JSON.parse(await readFile(join(modelDir, 'card.json'), 'utf8').catch(() => '{}')) as { files?: unknown };
  if (!Array.isArray(card.files)) return;
  const present = new Set(files);
  const missing = card.files.map((f) => (f as { path?: unknown })?.path).find((path) => typeof path !== 'string' || !present.has(path));
  if (missing !== undefined) {
    throw new InputError(
      `${join(modelDir, String(missing))}: listed in ${join(modelDir, 'card.json')} but missing; the model directory is incomplete, so it is not published`,
    );
  }
}

/** What to upload from a run (or model) directory: [relative local path, relative key]. */
async function planUpload(dir: string): Promise<{ local: string; name: string }[]> {
  if (
    !(await stat(dir).then(
      (s) => s.isDirectory(),
      () => false,
    ))
  ) {
    throw new InputError(`${dir}: no such directory (pass --run DIR of a trained run, or pipe train/eval-model's pointer in)`);
  }
  if (await isRegularFile(join(dir, MODEL_DIR, 'card.json'))) {
    const plan: { local: string; name: string }[] = [];
    for (const file of RUN_FILES) if (await isRegularFile(join(dir, file))) plan.push({ local: join(dir, file), name: file });
    for (const sub of RUN_DIRS) {
      const files = await filesUnder(join(dir, sub));
      if (sub === MODEL_DIR) await checkListedFiles(join(dir, sub), files);
      for (const file of files) plan.push({ local: join(dir, sub, file), name: `${sub}/${file}` });
    }
    return plan;
  }
  if (await isRegularFile(join(dir, 'card.json'))) {
    const files = await filesUnder(dir);
    await checkListedFiles(dir, files);
    return files.map((file) => ({ local: join(dir, file), name: `model/${file}` }));
  }
  throw new InputError(`${dir}: neither a run directory (no model/card.json) nor a model directory (no card.json); pass --run DIR of a trained run`);
}

interface Source {
  name: string;
  source: { path: string } | { bytes: Uint8Array };
  size: number;
  sha256: string;
}

async function digestSources(dir: string): Promise<Source[]> {
  const plan = await planUpload(dir);
  const snippet = await readSnippet();
  const files = await Promise.all(plan.map(async (p) => ({ name: p.name, source: { path: p.local }, ...(await digestFile(p.local)) })));
  return [...files, { name: SNIPPET_NAME, source: { bytes: snippet }, size: snippet.length, sha256: sha256(snippet) }];
}

/** S3 refuses longer keys (with an unhelpful 400 on some stores). */
const MAX_KEY_BYTES = 1024;

/** UsageError naming the prefix when a key of the publication would be longer than S3 allows. */
function checkKeyLengths(bucket: string, prefix: string, keys: string[]): void {
  const longest = keys.reduce((a, b) => (Buffer.byteLength(b) > Buffer.byteLength(a) ? b : a), '');
  const bytes = Buffer.byteLength(longest);
  if (bytes <= MAX_KEY_BYTES) return;
  throw new UsageError(
    `--prefix ${JSON.stringify(formatS3Uri(bucket, prefix).slice(0, 80))}… (${Buffer.byteLength(prefix)} bytes) is too long: the key ${JSON.stringify(`${longest.slice(0, 40)}…${longest.slice(-40)}`)} would be ${bytes} bytes of UTF-8, and S3 allows ${MAX_KEY_BYTES}; use a prefix of at most ${MAX_KEY_BYTES - (bytes - Buffer.byteLength(prefix))} bytes`,
  );
}

/**
 * Publish a run to s3://bucket/prefix/ atomically: every object (results.csv, model/ unchanged, evaluation files
 * and plots when present, load_model.mjs) goes under prefix/p/<id>/ (id: a hash of the content, so an unchanged
 * object of an interrupted or repeated publication is not sent again), each hashed as it is sent and checked by
 * HEAD, then ONE manifest, prefix/publication.json, is written: the commit. Only then is what earlier publications
 * listed (the manifest's `superseded`) removed; nothing else under the prefix is touched. One publisher at a time
 * holds the prefix's lease (prefix/publication.lock); another gets exit 75. Readers trust only the manifest, so
 * they see the old publication or the new one, never a mix.
 */
export async function runUploadS3(options: UploadS3Options): Promise<UploadSummary> {
  const { client, bucket, log, signal } = options;
  const dir = resolve(options.cwd, options.dir);
  const prefix = options.prefix.replace(/^\/+/, '').replace(/\/*$/, '/').replace(/^\/$/, '');
  const sources = await digestSources(dir);
  if (!sources.some((p) => p.name === RESULTS_CSV)) log.warn(`%s has no ${RESULTS_CSV}; uploading the rest`, options.dir);
  const id = publicationId(sources);
  const objectsDir = `${PUBLICATION_OBJECTS_DIR}${id}/`;
  checkKeyLengths(
    bucket,
    prefix,
    [PUBLICATION_FILE, PUBLICATION_LEASE_FILE, ...sources.map((s) => objectsDir + s.name)].map((k) => joinKey(prefix, k)),
  );
  const retry = { retries: options.retries ?? 5, log, ...(signal ? { signal } : {}) };
  const lease = await acquirePublicationLease(client, bucket, prefix, retry);
  try {
    return await publish(options, { dir, prefix, sources, id, objectsDir, retry, lease });
  } finally {
    await lease.release();
  }
}

interface PublishPlan {
  dir: string;
  prefix: string;
  sources: Source[];
  id: string;
  objectsDir: string;
  retry: { retries: number; log: Logger; signal?: AbortSignal };
  lease: PublicationLease;
}

async function publish(options: UploadS3Options, plan: PublishPlan): Promise<UploadSummary> {
  const { client, bucket, log, signal } = options;
  const { dir, prefix, sources, id, objectsDir, retry, lease } = plan;
  const base = formatS3Uri(bucket, prefix);

  // Multipart uploads a killed publisher left under prefix/p/: only those started before this lease was taken,
  // and only where the lease excludes other publishers (elsewhere, a day old).
  const before = lease.exclusive ? lease.acquired : new Date(Date.now() - 24 * 3600 * 1000);
  const stale = await abortUploadsUnder(client, bucket, `${joinKey(prefix, PUBLICATION_OBJECTS_DIR)}/`, before, retry);
  if (stale > 0) log.info('aborted %d stale multipart upload(s) under %s%s', stale, base, PUBLICATION_OBJECTS_DIR);

  // Objects the current publication already holds are copied on the server instead of sent again.
  let unreadable = false;
  const found = await readPublicationVersion(client, bucket, prefix, retry).catch((error: unknown) => {
    log.warn('%s%s cannot be read, so it is replaced and nothing it listed is removed: %s', base, PUBLICATION_FILE, (error as Error).message);
    unreadable = true;
    return undefined;
  });
  const current = found?.manifest;
  const published = new Map((current?.objects ?? []).map((o) => [`${o.size} ${o.sha256}`, joinKey(prefix, o.key)]));
  const totalBytes = sources.reduce((sum, s) => sum + s.size, 0);
  const progress = createProgress({
    label: 'upload',
    total: sources.length,
    unit: 'files',
    quiet: log.quiet,
    ...(options.stderr ? { stream: options.stderr } : {}),
  });
  const limit = pLimit(options.concurrency ?? 8);
  let sent = 0;
  const settled = await Promise.allSettled(
    sources.map((source) =>
      limit(async (): Promise<UploadItem> => {
        signal?.throwIfAborted();
        const key = joinKey(prefix, objectsDir + source.name);
        const uri = formatS3Uri(bucket, key);
        const existing = await headObject(client, bucket, key, retry);
        // Already there: the sha256 upload-s3 recorded, which it leaves only on bytes it checked as sent.
        if (existing?.size === source.size && existing.metadata.sha256 === source.sha256) {
          progress.increment(1);
          return { name: source.name, key, uri, status: 'skipped', bytes: 0 };
        }
        const from = published.get(`${source.size} ${source.sha256}`);
        const copied =
          from !== undefined &&
          (await copyObject(client, bucket, from, key, retry).then(
            () => true,
            () => false,
          ));
        if (!copied) {
          await uploadObject(client, bucket, key, source.source, {
            ...retry,
            contentType: contentTypeOf(source.name),
            metadata: { sha256: source.sha256 },
            sha256: source.sha256,
            ...(options.partSize ? { partSize: options.partSize } : {}),
          });
        }
        const check = await headObject(client, bucket, key, retry);
        if (check?.size !== source.size || check.metadata.sha256 !== source.sha256) {
          throw new Error(
            `${uri}: after upload it holds ${check?.size ?? 'no'} bytes (sha256 ${check?.metadata.sha256 ?? 'none'}), expected ${source.size} (${source.sha256})`,
          );
        }
        if (copied) {
          progress.increment(1);
          return { name: source.name, key, uri, status: 'copied', bytes: 0 };
        }
        sent += source.size;
        progress.increment(1, `${(sent / 1e6).toFixed(1)} MB`);
        return { name: source.name, key, uri, status: 'uploaded', bytes: source.size };
      }),
    ),
  );
  const failed = settled.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed || signal?.aborted) {
    if (signal?.aborted)
      await abortUploadsUnder(client, bucket, `${joinKey(prefix, objectsDir)}/`, new Date(Date.now() + 60_000), { retries: 2 }).catch(() => 0);
    throw signal?.aborted ? signal.reason : failed!.reason;
  }
  const items = settled.map((r) => (r as PromiseFulfilledResult<UploadItem>).value);
  progress.finish(`${(sent / 1e6).toFixed(1)} of ${(totalBytes / 1e6).toFixed(1)} MB sent`);

  const objects: PublicationObject[] = sources.map((s) => ({ name: s.name, key: objectsDir + s.name, size: s.size, sha256: s.sha256 }));
  let manifest: PublicationManifest;
  if (current?.id === id) {
    manifest = current;
  } else {
    const superseded = await supersededKeys(
      client,
      bucket,
      prefix,
      current,
      objects.map((o) => o.key),
      retry,
    );
    manifest = {
      format: PUBLICATION_FORMAT,
      id,
      run: basename(dir),
      created: new Date().toISOString(),
      objects,
      ...(superseded.length > 0 ? { superseded } : {}),
    };
    signal?.throwIfAborted();
    await lease.check();
    // The commit: from here on readers see this publication. Conditional on the manifest read above, so a
    // publication committed meanwhile by anyone is never overwritten unseen (where the store honours it).
    const committed = await putObjectIf(client, bucket, joinKey(prefix, PUBLICATION_FILE), `${JSON.stringify(manifest, null, 2)}\n`, {
      ...retry,
      contentType: 'application/json',
      ...(found ? { ifMatch: found.etag } : unreadable ? {} : { ifNoneMatch: '*' }),
    });
    // Refused, unless it was this very write, retried after its reply was lost.
    if (
      committed === 'refused' &&
      (await readPublicationVersion(client, bucket, prefix, retry).catch(() => undefined))?.manifest.created !== manifest.created
    ) {
      throw new LockedError(
        `${base}${PUBLICATION_FILE}: another publication was committed there while this one was being made; nothing was committed, publish again`,
      );
    }
  }
  const removed = await removeSuperseded(client, bucket, prefix, manifest, { ...retry, exclusive: lease.exclusive });
  const uploaded = items.filter((i) => i.status === 'uploaded').length;
  const copied = items.filter((i) => i.status === 'copied').length;
  log.info(
    'publication %s under %s: %d uploaded, %d copied, %d already there, %d old objects removed',
    id,
    base,
    uploaded,
    copied,
    items.length - uploaded - copied,
    removed,
  );
  const root = `${base}${objectsDir}`;
  const pointer: Pointer = {
    kind: 'upload',
    uri: base,
    path: options.dir,
    manifest: `${base}${PUBLICATION_FILE}`,
    id,
    model: `${root}${MODEL_DIR}/`,
    ...(sources.some((s) => s.name === RESULTS_CSV) ? { results: `${root}${RESULTS_CSV}` } : {}),
    snippet: `${root}${SNIPPET_NAME}`,
    uploaded,
    copied,
    skipped: items.length - uploaded - copied,
    objects: items.map((i) => i.uri),
  };
  writePointer(options.stdout, pointer);
  return { items, manifest, pointer };
}
