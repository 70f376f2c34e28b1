import { CopyObjectCommand, CreateBucketCommand, HeadObjectCommand, ListObjectsV2Command, type S3Client } from '@aws-sdk/client-s3';
import { InputError } from '@imgpipe/kit';
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

interface S3ObjectInfo {
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

interface ListOptions extends RetryOptions {
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

interface HeadResult {
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

/** Copy an object within a bucket on the server (metadata and content type kept); up to 5 GB. */
export async function copyObject(client: S3Client, bucket: string, fromKey: string, toKey: string, options: RetryOptions = {}): Promise<void> {
  try {
    await withS3Retries(
      () =>
        client.send(
          new CopyObjectCommand({ Bucket: bucket, Key: toKey, CopySource: `${bucket}/${fromKey.split('/').map(encodeURIComponent).join('/')}` }),
        ),
      { ...options, what: `copy s3://${bucket}/${fromKey} to ${toKey}` },
    );
  } catch (error) {
    throw describeS3Error(error, { bucket, key: fromKey, action: 'copy' });
  }
}
