import { createHash, type Hash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { extname } from 'node:path';
import { Transform } from 'node:stream';
import { FailureError } from '@imgpipe/kit';
import type { S3Client } from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { abortMultipartUpload, deleteObjects } from './s3-multipart.js';
import { describeS3Error, withS3Retries, type RetryOptions } from './s3.js';
import { unquoteEtag } from './s3-objects.js';

/** Largest part we send: fauxqs (and some S3-compatible stores) refuse request bodies over 11 MiB. */
const MAX_PART_SIZE = 10 * 1024 * 1024;
/** Objects above this size go up in parts of this size. */
const DEFAULT_PART_SIZE = 8 * 1024 * 1024;

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

interface UploadOptions extends RetryOptions {
  contentType?: string;
  metadata?: Record<string, string>;
  /** Objects larger than this go up in parts of this size (at most 10 MiB). Default 8 MiB. */
  partSize?: number;
  /** Parts in flight for one multipart upload. Default 4. */
  queueSize?: number;
  /**
   * The sha256 the content must have (e.g. from hashing the file earlier): the bytes are hashed as they are sent,
   * and content that differs (a file rewritten since) is refused before sending or, when streamed, deleted after.
   */
  sha256?: string;
}

interface UploadResult {
  bytes: number;
  etag: string;
  multipart: boolean;
  /** The sha256 of the bytes sent. */
  sha256: string;
}

/**
 * Hashes a stream as it passes: sha256 of the whole, and the MD5 of each `partSize` part, from which the ETag S3
 * gives the object follows (the MD5 for one part; MD5 of the parts' MD5s and "-N" for a multipart upload).
 */
class SendDigest extends Transform {
  readonly sha = createHash('sha256');
  private readonly parts: Buffer[] = [];
  private part: Hash = createHash('md5');
  private inPart = 0;
  bytes = 0;
  constructor(private readonly partSize: number) {
    super();
  }
  override _transform(chunk: Buffer, _encoding: BufferEncoding, done: (error?: Error | null, data?: Buffer) => void): void {
    this.sha.update(chunk);
    this.bytes += chunk.length;
    for (let at = 0; at < chunk.length; ) {
      const take = Math.min(chunk.length - at, this.partSize - this.inPart);
      this.part.update(chunk.subarray(at, at + take));
      this.inPart += take;
      at += take;
      if (this.inPart === this.partSize) this.endPart();
    }
    done(null, chunk);
  }
  private endPart(): void {
    this.parts.push(this.part.digest());
    this.part = createHash('md5');
    this.inPart = 0;
  }
  /** The ETag S3 computes for what passed, sent in `partSize` parts. */
  etag(): string {
    if (this.inPart > 0 || this.parts.length === 0) this.endPart();
    if (this.parts.length === 1) return this.parts[0]!.toString('hex');
    return `${createHash('md5').update(Buffer.concat(this.parts)).digest('hex')}-${this.parts.length}`;
  }
}

function changedError(what: string, expected: string, sent: string): FailureError {
  return new FailureError(
    `${what} changed while it was being uploaded (sha256 ${expected.slice(0, 12)}… when planned, ${sent.slice(0, 12)}… when sent); nothing was committed: publish again once nothing writes to it`,
  );
}

/**
 * Upload a file (a path) or bytes through @aws-sdk/lib-storage: one PUT up to the part size, multipart above it
 * (an upload that fails is aborted, so no parts are left behind). Retried as a whole on retryable errors.
 * `signal` (e.g. SIGINT) stops the upload and aborts its multipart upload.
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
  const what = 'path' in source ? source.path : `the content for s3://${bucket}/${key}`;
  try {
    return await withS3Retries(
      async () => {
        // Small files are read whole (a buffer can be re-sent by the SDK); large ones stream from disk, hashed on the way.
        const whole = 'bytes' in source ? source.bytes : size <= partSize ? await readFile(source.path) : undefined;
        const digest = whole === undefined ? new SendDigest(partSize) : undefined;
        const sent = whole === undefined ? undefined : createHash('sha256').update(whole).digest('hex');
        if (options.sha256 && sent !== undefined && sent !== options.sha256) throw changedError(what, options.sha256, sent);
        const body = whole ?? createReadStream((source as { path: string }).path).pipe(digest!);
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
        const stop = () => void upload.abort();
        options.signal?.throwIfAborted();
        options.signal?.addEventListener('abort', stop, { once: true });
        try {
          const result = await upload.done();
          const etag = unquoteEtag(result.ETag);
          // ETags are MD5-based only without SSE-KMS / SSE-C (Amazon S3), and only for stores that give the usual ones.
          const sse = (result as { ServerSideEncryption?: string }).ServerSideEncryption;
          const md5Etags = (sse === undefined || sse === 'AES256') && !(result as { SSECustomerAlgorithm?: string }).SSECustomerAlgorithm;
          if (digest) {
            const streamed = digest.sha.digest('hex');
            if (options.sha256 && streamed !== options.sha256) {
              await deleteObjects(client, bucket, [key], { retries: 2 }).catch(() => undefined);
              throw changedError(what, options.sha256, streamed);
            }
            // The store's ETag of what it holds against what was hashed on the way.
            if (md5Etags && /^[0-9a-f]{32}(-\d+)?$/.test(etag) && etag !== digest.etag()) {
              await deleteObjects(client, bucket, [key], { retries: 2 }).catch(() => undefined);
              throw new FailureError(
                `upload s3://${bucket}/${key}: the store holds ETag ${etag}, the bytes sent give ${digest.etag()}; the object was deleted, try again`,
              );
            }
            return { bytes: digest.bytes, etag, multipart: digest.bytes > partSize, sha256: streamed };
          }
          // A single PUT's ETag is the MD5 of what the store holds (where it gives the usual ETags).
          if (md5Etags && /^[0-9a-f]{32}$/.test(etag) && etag !== createHash('md5').update(whole!).digest('hex')) {
            await deleteObjects(client, bucket, [key], { retries: 2 }).catch(() => undefined);
            throw new FailureError(
              `upload s3://${bucket}/${key}: the store holds ETag ${etag}, not the MD5 of the bytes sent; the object was deleted, try again`,
            );
          }
          return { bytes: size, etag, multipart: size > partSize, sha256: sent! };
        } catch (error) {
          // lib-storage leaves the multipart upload open when aborted from outside: abort it here.
          const uploadId = (upload as unknown as { uploadId?: string }).uploadId;
          if (uploadId) await abortMultipartUpload(client, bucket, key, uploadId, { retries: 2 }).catch(() => undefined);
          throw error;
        } finally {
          options.signal?.removeEventListener('abort', stop);
        }
      },
      { ...options, what: options.what ?? `upload s3://${bucket}/${key}` },
    );
  } catch (error) {
    throw describeS3Error(error, { bucket, key, action: 'upload' });
  }
}
