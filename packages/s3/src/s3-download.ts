import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { GetObjectCommand, type GetObjectCommandOutput, type S3Client } from '@aws-sdk/client-s3';
import pLimit from 'p-limit';
import { FailureError, messageOf, safeJoin, streamToFileAtomic } from '@imgpipe/kit';
import { describeS3Error, isRetryableS3Error, s3ErrorCode, withS3Retries, type RetryOptions } from './s3.js';
import { isMd5Etag, listObjects, unquoteEtag } from './s3-objects.js';

/** A retryable error for a body that stopped arriving, ended short, or is not the bytes its ETag names. */
class BodyError extends Error {
  constructor(
    message: string,
    readonly code: 'StalledBody' | 'TruncatedBody' | 'CorruptBody',
  ) {
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

interface DownloadResult {
  bytes: number;
  etag: string;
  /** sha256 of the bytes written (the file's content identity). */
  sha256: string;
  /** Attempts that failed and were retried. */
  retries: number;
}

/**
 * Download one object to `path`: streamed into a temp file beside it and renamed into place only when the whole
 * body arrived (its length checked against Content-Length). Resets, 5xx, throttling, a stalled or a short body
 * are retried with backoff; the final error names the object and the fix.
 */
export async function downloadObject(
  client: S3Client,
  bucket: string,
  key: string,
  path: string,
  options: DownloadOptions = {},
): Promise<DownloadResult> {
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
        const watchdog = setInterval(
          () => {
            if (Date.now() - last < stallMs) return;
            stalled = true;
            controller.abort();
            body?.destroy(new BodyError(`no data for ${stallMs} ms`, 'StalledBody'));
          },
          Math.min(1_000, Math.max(50, stallMs / 4)),
        );
        let response: GetObjectCommandOutput;
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
        const hash = createHash('sha256');
        const md5 = createHash('md5');
        const etag = unquoteEtag(response.ETag);
        async function* counted(): AsyncGenerator<Buffer> {
          for await (const chunk of stream as AsyncIterable<Buffer>) {
            received += chunk.length;
            hash.update(chunk);
            md5.update(chunk);
            last = Date.now();
            options.onBytes?.(chunk.length);
            yield chunk;
          }
          if (expected !== undefined && received !== expected) {
            throw new BodyError(`body ended after ${received} of ${expected} bytes`, 'TruncatedBody');
          }
          // Failing here fails the write: the temp file is removed and nothing is renamed into place.
          const digest = md5.digest('hex');
          if (etagIsContentMd5(response) && digest !== etag.toLowerCase()) {
            throw new BodyError(`the body's MD5 ${digest} is not its ETag ${etag}: corrupted on the way`, 'CorruptBody');
          }
        }
        try {
          await streamToFileAtomic(Readable.from(counted(), { objectMode: false }), path);
        } finally {
          clearInterval(watchdog);
          if (!stream.destroyed) stream.destroy();
        }
        return { bytes: received, etag, sha256: hash.digest('hex'), retries };
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

/**
 * Whether a GET's ETag is the MD5 of its body: a 32-hex ETag (single-part upload), and no SSE-KMS or SSE-C, whose
 * ETags are not content hashes.
 */
function etagIsContentMd5(response: GetObjectCommandOutput): boolean {
  return (
    isMd5Etag(unquoteEtag(response.ETag)) && !String(response.ServerSideEncryption ?? '').startsWith('aws:kms') && !response.SSECustomerAlgorithm
  );
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

/**
 * An object as a stream (an images CSV), read as it arrives and never held whole. A body that breaks off or ends
 * short is resumed where it stopped, by a ranged GET of the same version (If-Match its ETag), up to `retries`
 * times; an object replaced meanwhile is an error, never a mix of two versions. Errors name the object.
 */
export function openObjectStream(client: S3Client, bucket: string, key: string, options: RetryOptions = {}): Readable {
  const retries = options.retries ?? 5;
  const what = `read s3://${bucket}/${key}`;
  let offset = 0;
  let etag: string | undefined;
  let size: number | undefined;
  let broken = 0;
  async function* chunks(): AsyncGenerator<Buffer> {
    for (;;) {
      const resume = etag === undefined ? {} : { IfMatch: etag, Range: `bytes=${offset}-` };
      const response = await withS3Retries(() => client.send(new GetObjectCommand({ Bucket: bucket, Key: key, ...resume })), { ...options, what });
      etag ??= response.ETag;
      size ??= response.ContentLength;
      const body = response.Body as Readable | undefined;
      try {
        if (!body) throw new BodyError('empty response body', 'TruncatedBody');
        for await (const chunk of body as AsyncIterable<Buffer>) {
          offset += chunk.length;
          yield chunk;
        }
        if (size !== undefined && offset < size) throw new BodyError(`body ended after ${offset} of ${size} bytes`, 'TruncatedBody');
        return;
      } catch (error) {
        if (broken >= retries || !isRetryableS3Error(error)) throw error;
        broken += 1;
        options.log?.debug('%s: %s after %d bytes; resuming there (%d/%d)', what, s3ErrorCode(error) || messageOf(error), offset, broken, retries);
        await sleep(Math.random() * Math.min(options.maxDelayMs ?? 5_000, (options.baseDelayMs ?? 100) * 2 ** broken));
      } finally {
        body?.destroy();
      }
    }
  }
  async function* described(): AsyncGenerator<Buffer> {
    try {
      yield* chunks();
    } catch (error) {
      if (s3ErrorCode(error) === 'PreconditionFailed') {
        throw new FailureError(`${what}: the object was replaced while it was being read (after ${offset} bytes); run again`, { cause: error });
      }
      throw describeS3Error(error, { bucket, key, action: 'read' });
    }
  }
  return Readable.from(described(), { objectMode: false });
}

/** The local path for a key under `dest` (kit's safeJoin: an InputError when the key could escape it). */
export function safeLocalPath(dest: string, key: string): string {
  return safeJoin(dest, key, 'key');
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
