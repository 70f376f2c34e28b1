import { createReadStream } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { extname } from 'node:path';
import type { S3Client } from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { abortMultipartUpload } from './s3-multipart.js';
import { describeS3Error, withS3Retries, type RetryOptions } from './s3.js';
import { unquoteEtag } from './s3-objects.js';

/** Largest part we send: fauxqs (and some S3-compatible stores) refuse request bodies over 11 MiB. */
export const MAX_PART_SIZE = 10 * 1024 * 1024;
/** Objects above this size go up in parts of this size. */
export const DEFAULT_PART_SIZE = 8 * 1024 * 1024;

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
        const stop = () => void upload.abort();
        options.signal?.throwIfAborted();
        options.signal?.addEventListener('abort', stop, { once: true });
        try {
          const result = await upload.done();
          return { bytes: size, etag: unquoteEtag(result.ETag), multipart: size > partSize };
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
