import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { extname, isAbsolute, join, relative, resolve } from 'node:path';
import { Readable } from 'node:stream';
import {
  CreateBucketCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  type S3Client,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import pLimit from 'p-limit';
import { InputError } from './errors.js';
import { streamToFileAtomic } from './files.js';
import { describeS3Error, withS3Retries, type RetryOptions } from './s3.js';

export type { S3Client } from '@aws-sdk/client-s3';

/** Create a bucket; one that already exists and is ours is fine. */
export async function createBucket(client: S3Client, bucket: string, options: RetryOptions = {}): Promise<void> {
  try {
    await withS3Retries(() => client.send(new CreateBucketCommand({ Bucket: bucket })), { ...options, what: `create bucket ${bucket}` });
  } catch (error) {
    const code = (error as { name?: string }).name;
    if (code === 'BucketAlreadyOwnedByYou' || code === 'BucketAlreadyExists') return;
    throw describeS3Error(error, { bucket, action: 'create bucket' });
  }
}

/** Largest part we send: fauxqs (and some S3-compatible stores) refuse request bodies over 11 MiB. */
export const MAX_PART_SIZE = 10 * 1024 * 1024;
/** Objects above this size go up in parts of this size. */
export const DEFAULT_PART_SIZE = 8 * 1024 * 1024;

export interface S3ObjectInfo {
  key: string;
  size: number;
  /** The ETag without quotes: an MD5 hex for single-part uploads, `md5-N` for multipart ones. */
  etag: string;
  lastModified?: Date | undefined;
}

export function unquoteEtag(etag: string | undefined): string {
  return (etag ?? '').replace(/^W\//, '').replace(/"/g, '');
}

/** True when the ETag is a plain MD5 of the content (single-part, unencrypted-with-KMS objects). */
export function isMd5Etag(etag: string): boolean {
  return /^[0-9a-f]{32}$/i.test(etag);
}

export interface ListOptions extends RetryOptions {
  prefix?: string;
  /** Keys per request (the server may return fewer); default the server's (1,000 on AWS). */
  pageSize?: number;
  endpoint?: string;
}

/**
 * Every object under a prefix. Pages follow `IsTruncated` and `NextContinuationToken`, never a count of 1,000:
 * S3-compatible servers may return fewer keys per page.
 */
export async function* listObjects(client: S3Client, bucket: string, options: ListOptions = {}): AsyncGenerator<S3ObjectInfo> {
  let token: string | undefined;
  do {
    const page = await withS3Retries(
      () =>
        client.send(
          new ListObjectsV2Command({
            Bucket: bucket,
            ...(options.prefix ? { Prefix: options.prefix } : {}),
            ...(options.pageSize ? { MaxKeys: options.pageSize } : {}),
            ...(token ? { ContinuationToken: token } : {}),
          }),
        ),
      { ...options, what: `list s3://${bucket}/${options.prefix ?? ''}` },
    ).catch((error: unknown) => {
      throw describeS3Error(error, { bucket, action: 'list', ...(options.endpoint ? { endpoint: options.endpoint } : {}) });
    });
    for (const item of page.Contents ?? []) {
      if (item.Key === undefined) continue;
      yield { key: item.Key, size: item.Size ?? 0, etag: unquoteEtag(item.ETag), lastModified: item.LastModified };
    }
    if (page.IsTruncated && !page.NextContinuationToken) {
      throw new InputError(`list s3://${bucket}/${options.prefix ?? ''}: the server said the listing is truncated but gave no continuation token`);
    }
    token = page.IsTruncated ? page.NextContinuationToken : undefined;
  } while (token);
}

export interface HeadResult {
  size: number;
  etag: string;
  contentType?: string | undefined;
  metadata: Record<string, string>;
}

/** HEAD an object: its size, ETag and metadata, or undefined when there is no such key. */
export async function headObject(client: S3Client, bucket: string, key: string, options: RetryOptions = {}): Promise<HeadResult | undefined> {
  try {
    const head = await withS3Retries(() => client.send(new HeadObjectCommand({ Bucket: bucket, Key: key })), {
      ...options,
      what: `head s3://${bucket}/${key}`,
    });
    return { size: head.ContentLength ?? 0, etag: unquoteEtag(head.ETag), contentType: head.ContentType, metadata: head.Metadata ?? {} };
  } catch (error) {
    const e = error as { name?: string; $metadata?: { httpStatusCode?: number } };
    if (e.name === 'NotFound' || e.name === 'NoSuchKey' || e.$metadata?.httpStatusCode === 404) return undefined;
    throw describeS3Error(error, { bucket, key, action: 'head' });
  }
}

/** A retryable error for a body that stopped arriving or ended short. */
class BodyError extends Error {
  constructor(message: string, readonly code: 'StalledBody' | 'TruncatedBody') {
    super(message);
    this.name = code;
  }
}

export interface DownloadOptions extends RetryOptions {
  /** Abort and retry a body that delivers nothing for this long (ms). Default 30 s. */
  stallMs?: number;
  /** Called with each chunk's size as it lands (counts bytes of failed attempts too). */
  onBytes?: (bytes: number) => void;
}

export interface DownloadResult {
  bytes: number;
  etag: string;
  /** Attempts that failed and were retried. */
  retries: number;
}

/**
 * Download one object to `path`: streamed into a temp file beside it and renamed into place only when the whole
 * body arrived (its length checked against Content-Length). Resets, 5xx, throttling, a stalled or a short body
 * are retried with backoff; the final error names the object and the fix.
 */
export async function downloadObject(client: S3Client, bucket: string, key: string, path: string, options: DownloadOptions = {}): Promise<DownloadResult> {
  const stallMs = options.stallMs ?? 30_000;
  let retries = 0;
  try {
    return await withS3Retries(
      async () => {
        // One watchdog covers both the wait for the response and the body: no progress for stallMs aborts.
        const controller = new AbortController();
        let last = Date.now();
        let stalled = false;
        let body: Readable | undefined;
        const watchdog = setInterval(() => {
          if (Date.now() - last < stallMs) return;
          stalled = true;
          controller.abort();
          body?.destroy(new BodyError(`no data for ${stallMs} ms`, 'StalledBody'));
        }, Math.min(1_000, Math.max(50, stallMs / 4)));
        let response;
        try {
          response = await client.send(new GetObjectCommand({ Bucket: bucket, Key: key }), { abortSignal: controller.signal });
        } catch (error) {
          clearInterval(watchdog);
          throw stalled ? new BodyError(`no response for ${stallMs} ms`, 'StalledBody') : error;
        }
        last = Date.now();
        body = response.Body as Readable | undefined;
        if (!body) {
          clearInterval(watchdog);
          throw new BodyError('empty response body', 'TruncatedBody');
        }
        if (body.errored || body.destroyed) {
          clearInterval(watchdog);
          throw new BodyError(`connection lost before the body: ${body.errored?.message ?? 'closed'}`, 'TruncatedBody');
        }
        const stream = body;
        const expected = response.ContentLength;
        let received = 0;
        async function* counted(): AsyncGenerator<Buffer> {
          for await (const chunk of stream as AsyncIterable<Buffer>) {
            received += chunk.length;
            last = Date.now();
            options.onBytes?.(chunk.length);
            yield chunk;
          }
          if (expected !== undefined && received !== expected) {
            throw new BodyError(`body ended after ${received} of ${expected} bytes`, 'TruncatedBody');
          }
        }
        try {
          await streamToFileAtomic(Readable.from(counted(), { objectMode: false }), path);
        } finally {
          clearInterval(watchdog);
          if (!stream.destroyed) stream.destroy();
        }
        return { bytes: received, etag: unquoteEtag(response.ETag), retries };
      },
      {
        ...options,
        what: options.what ?? `download s3://${bucket}/${key}`,
        onRetry: (error, attempt) => {
          retries = attempt;
          options.onRetry?.(error, attempt);
        },
      },
    );
  } catch (error) {
    throw describeS3Error(error, { bucket, key, action: 'download' });
  }
}

/** A whole (small) object in memory, with retries. */
export async function readObjectBytes(client: S3Client, bucket: string, key: string, options: RetryOptions = {}): Promise<Buffer> {
  try {
    return await withS3Retries(
      async () => {
        const response = await client.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
        const bytes = Buffer.from(await response.Body!.transformToByteArray());
        if (response.ContentLength !== undefined && bytes.length !== response.ContentLength) {
          throw new BodyError(`body ended after ${bytes.length} of ${response.ContentLength} bytes`, 'TruncatedBody');
        }
        return bytes;
      },
      { ...options, what: `read s3://${bucket}/${key}` },
    );
  } catch (error) {
    throw describeS3Error(error, { bucket, key, action: 'read' });
  }
}

/** An object as a stream (e.g. an images CSV), without retries once the body has started. */
export async function openObjectStream(client: S3Client, bucket: string, key: string, options: RetryOptions = {}): Promise<Readable> {
  try {
    const response = await withS3Retries(() => client.send(new GetObjectCommand({ Bucket: bucket, Key: key })), {
      ...options,
      what: `read s3://${bucket}/${key}`,
    });
    return response.Body as Readable;
  } catch (error) {
    throw describeS3Error(error, { bucket, key, action: 'read' });
  }
}

/**
 * The local path for a key under `dest`, or an InputError when the key could escape it: `..` segments, absolute
 * paths, drive letters, backslashes used as separators, NUL bytes, or a key naming a directory.
 */
export function safeLocalPath(dest: string, key: string): string {
  const refuse = (why: string) => new InputError(`key '${key.replace(/\0/g, '\\0')}' ${why}; refusing to write it`);
  if (key === '') throw refuse('is empty');
  if (key.includes('\0')) throw refuse('contains a NUL byte');
  if (key.startsWith('/') || key.startsWith('\\') || isAbsolute(key) || /^[a-zA-Z]:/.test(key)) throw refuse(`is an absolute path`);
  const segments = key.split(/[\\/]/);
  if (segments.some((segment) => segment === '..')) throw refuse(`has a '..' segment that would leave --dest`);
  if (key.endsWith('/') || key.endsWith('\\')) throw refuse('names a directory, not a file');
  const kept = segments.filter((segment) => segment !== '' && segment !== '.');
  if (kept.length === 0) throw refuse('names no file');
  const root = resolve(dest);
  const full = resolve(root, ...kept);
  const rel = relative(root, full);
  if (rel === '' || rel.startsWith('..') || isAbsolute(rel)) throw refuse('resolves outside --dest');
  return join(dest, ...kept);
}

/** Download every object under `prefix` into `dest`, keeping the key's path below the prefix. */
export async function downloadPrefix(
  client: S3Client,
  bucket: string,
  prefix: string,
  dest: string,
  options: DownloadOptions & { concurrency?: number } = {},
): Promise<{ key: string; path: string; bytes: number }[]> {
  const limit = pLimit(options.concurrency ?? 8);
  const base = prefix === '' || prefix.endsWith('/') ? prefix : `${prefix}/`;
  const jobs: Promise<{ key: string; path: string; bytes: number }>[] = [];
  for await (const object of listObjects(client, bucket, { ...options, prefix: base })) {
    const path = safeLocalPath(dest, object.key.slice(base.length));
    jobs.push(limit(async () => ({ key: object.key, path, bytes: (await downloadObject(client, bucket, object.key, path, options)).bytes })));
  }
  return Promise.all(jobs);
}

export interface FileDigest {
  size: number;
  md5: string;
  sha256: string;
}

/** Size, MD5 (to compare with single-part ETags) and sha256 of a file, in one pass. */
export async function digestFile(path: string): Promise<FileDigest> {
  const md5 = createHash('md5');
  const sha = createHash('sha256');
  let size = 0;
  for await (const chunk of createReadStream(path) as AsyncIterable<Buffer>) {
    md5.update(chunk);
    sha.update(chunk);
    size += chunk.length;
  }
  return { size, md5: md5.digest('hex'), sha256: sha.digest('hex') };
}

/**
 * Whether a local file already holds an object: same size, and the same MD5 when the ETag is one
 * (multipart ETags are not content hashes, so size and a `sha256` metadata entry are what can be compared).
 */
export async function localFileMatches(path: string, object: { size: number; etag: string; metadata?: Record<string, string> }): Promise<boolean> {
  const info = await stat(path).catch(() => undefined);
  if (!info?.isFile() || info.size !== object.size) return false;
  const sha = object.metadata?.sha256;
  if (!isMd5Etag(object.etag) && !sha) return true;
  const digest = await digestFile(path);
  if (sha) return digest.sha256 === sha;
  return digest.md5 === object.etag.toLowerCase();
}

const CONTENT_TYPES: Record<string, string> = {
  '.json': 'application/json',
  '.jsonl': 'application/x-ndjson',
  '.csv': 'text/csv; charset=utf-8',
  '.html': 'text/html; charset=utf-8',
  '.png': 'image/png',
  '.jpg': 'image/jpeg',
  '.svg': 'image/svg+xml',
  '.txt': 'text/plain; charset=utf-8',
  '.md': 'text/markdown; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.bin': 'application/octet-stream',
  '.onnx': 'application/octet-stream',
};

/** The Content-Type to store an object under, from its name's extension. */
export function contentTypeOf(name: string): string {
  return CONTENT_TYPES[extname(name).toLowerCase()] ?? 'application/octet-stream';
}

export interface UploadOptions extends RetryOptions {
  contentType?: string;
  metadata?: Record<string, string>;
  /** Objects larger than this go up in parts of this size (at most 10 MiB). Default 8 MiB. */
  partSize?: number;
  /** Parts in flight for one multipart upload. Default 4. */
  queueSize?: number;
}

export interface UploadResult {
  bytes: number;
  etag: string;
  multipart: boolean;
}

/**
 * Upload a file (a path) or bytes through @aws-sdk/lib-storage: one PUT up to the part size, multipart above it
 * (an upload that fails is aborted, so no parts are left behind). Retried as a whole on retryable errors.
 */
export async function uploadObject(
  client: S3Client,
  bucket: string,
  key: string,
  source: { path: string } | { bytes: Uint8Array | string },
  options: UploadOptions = {},
): Promise<UploadResult> {
  const partSize = Math.min(MAX_PART_SIZE, Math.max(5 * 1024 * 1024, options.partSize ?? DEFAULT_PART_SIZE));
  const size = 'path' in source ? (await stat(source.path)).size : Buffer.byteLength(source.bytes);
  try {
    return await withS3Retries(
      async () => {
        // Small files are read whole (a buffer can be re-sent by the SDK); large ones stream from disk.
        const body =
          'bytes' in source ? source.bytes : size <= partSize ? await readFile(source.path) : createReadStream(source.path);
        const upload = new Upload({
          client,
          partSize,
          queueSize: options.queueSize ?? 4,
          leavePartsOnError: false,
          params: {
            Bucket: bucket,
            Key: key,
            Body: body,
            ...(options.contentType ? { ContentType: options.contentType } : {}),
            ...(options.metadata ? { Metadata: options.metadata } : {}),
          },
        });
        const result = await upload.done();
        return { bytes: size, etag: unquoteEtag(result.ETag), multipart: size > partSize };
      },
      { ...options, what: options.what ?? `upload s3://${bucket}/${key}` },
    );
  } catch (error) {
    throw describeS3Error(error, { bucket, key, action: 'upload' });
  }
}

