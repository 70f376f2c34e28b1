import { GetObjectCommand, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { describeS3Error, s3ErrorCode, withS3Retries, type RetryOptions } from './s3.js';
import { unquoteEtag } from './s3-objects.js';

function statusOf(error: unknown): number | undefined {
  return (error as { $metadata?: { httpStatusCode?: number } } | undefined)?.$metadata?.httpStatusCode;
}

/** An object's bytes and the ETag they were read under, or undefined when there is no such key. */
export async function readObjectVersion(
  client: S3Client,
  bucket: string,
  key: string,
  options: RetryOptions = {},
): Promise<{ bytes: Buffer; etag: string } | undefined> {
  try {
    return await withS3Retries(
      async () => {
        const response = await client.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
        return { bytes: Buffer.from(await response.Body!.transformToByteArray()), etag: unquoteEtag(response.ETag) };
      },
      { ...options, what: `read s3://${bucket}/${key}` },
    );
  } catch (error) {
    const code = s3ErrorCode(error);
    if (code === 'NoSuchKey' || code === 'NotFound' || statusOf(error) === 404) return undefined;
    throw describeS3Error(error, { bucket, key, action: 'read' });
  }
}

interface PutIfOptions extends RetryOptions {
  /** `If-None-Match: *`: write only if the key does not exist. */
  ifNoneMatch?: '*' | undefined;
  /** `If-Match: <etag>`: write only if the key holds this ETag. */
  ifMatch?: string | undefined;
  contentType?: string;
}

/**
 * A conditional PutObject of small bytes (Amazon S3 supports `If-None-Match: *` and `If-Match`). Returns the new
 * ETag, or 'refused' when the condition did not hold (412 PreconditionFailed, 409 ConditionalRequestConflict, or
 * 404 for If-Match on a missing key). A store that ignores the headers writes unconditionally: callers that need
 * exclusion must check for that themselves; one that answers 501 NotImplemented is written to unconditionally, alike.
 */
export async function putObjectIf(
  client: S3Client,
  bucket: string,
  key: string,
  bytes: Uint8Array | string,
  options: PutIfOptions,
): Promise<{ etag: string } | 'refused'> {
  const conditional = Boolean(options.ifNoneMatch || options.ifMatch);
  try {
    const result = await withS3Retries(
      () =>
        client.send(
          new PutObjectCommand({
            Bucket: bucket,
            Key: key,
            Body: bytes,
            ...(options.contentType ? { ContentType: options.contentType } : {}),
            ...(options.ifNoneMatch ? { IfNoneMatch: options.ifNoneMatch } : {}),
            ...(options.ifMatch ? { IfMatch: options.ifMatch.startsWith('"') ? options.ifMatch : `"${options.ifMatch}"` } : {}),
          }),
        ),
      { ...options, what: `conditional put s3://${bucket}/${key}` },
    );
    return { etag: unquoteEtag(result.ETag) };
  } catch (error) {
    const status = statusOf(error);
    const code = s3ErrorCode(error);
    if (status === 412 || status === 409 || code === 'PreconditionFailed' || code === 'ConditionalRequestConflict') return 'refused';
    if (options.ifMatch && (status === 404 || code === 'NoSuchKey')) return 'refused';
    // A store that does not implement conditional writes at all: write as one that ignores them would.
    if (conditional && (status === 501 || code === 'NotImplemented')) {
      options.log?.debug('s3://%s/%s: the store does not implement conditional writes (%s); writing unconditionally', bucket, key, code || status);
      return putObjectIf(client, bucket, key, bytes, { ...options, ifNoneMatch: undefined, ifMatch: undefined });
    }
    throw describeS3Error(error, { bucket, key, action: 'upload' });
  }
}
