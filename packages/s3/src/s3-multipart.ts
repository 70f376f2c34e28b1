import {
  AbortMultipartUploadCommand,
  DeleteObjectsCommand,
  type DeleteObjectsCommandOutput,
  ListMultipartUploadsCommand,
  type S3Client,
} from '@aws-sdk/client-s3';
import { describeS3Error, withS3Retries, type RetryOptions } from './s3.js';

interface MultipartUploadInfo {
  key: string;
  uploadId: string;
  initiated?: Date | undefined;
}

/** Multipart uploads started and neither completed nor aborted under a prefix (ListMultipartUploads, all pages). */
export async function listMultipartUploads(
  client: S3Client,
  bucket: string,
  prefix: string,
  options: RetryOptions = {},
): Promise<MultipartUploadInfo[]> {
  const found: MultipartUploadInfo[] = [];
  let keyMarker: string | undefined;
  let uploadIdMarker: string | undefined;
  try {
    do {
      const page = await withS3Retries(
        () =>
          client.send(
            new ListMultipartUploadsCommand({
              Bucket: bucket,
              Prefix: prefix,
              ...(keyMarker ? { KeyMarker: keyMarker } : {}),
              ...(uploadIdMarker ? { UploadIdMarker: uploadIdMarker } : {}),
            }),
          ),
        { ...options, what: `list multipart uploads s3://${bucket}/${prefix}` },
      );
      for (const upload of page.Uploads ?? []) {
        if (upload.Key && upload.UploadId) found.push({ key: upload.Key, uploadId: upload.UploadId, initiated: upload.Initiated });
      }
      const more = page.IsTruncated && (page.NextKeyMarker || page.NextUploadIdMarker);
      keyMarker = more ? page.NextKeyMarker : undefined;
      uploadIdMarker = more ? page.NextUploadIdMarker : undefined;
    } while (keyMarker || uploadIdMarker);
  } catch (error) {
    throw describeS3Error(error, { bucket, action: 'list multipart uploads' });
  }
  return found;
}

/** Abort one multipart upload (its parts are deleted); one already gone is fine. */
export async function abortMultipartUpload(
  client: S3Client,
  bucket: string,
  key: string,
  uploadId: string,
  options: RetryOptions = {},
): Promise<void> {
  try {
    await withS3Retries(() => client.send(new AbortMultipartUploadCommand({ Bucket: bucket, Key: key, UploadId: uploadId })), {
      ...options,
      what: `abort multipart upload of s3://${bucket}/${key}`,
    });
  } catch (error) {
    const e = error as { name?: string; $metadata?: { httpStatusCode?: number } };
    if (e.name === 'NoSuchUpload' || e.$metadata?.httpStatusCode === 404) return;
    throw describeS3Error(error, { bucket, key, action: 'abort multipart upload' });
  }
}

/** Delete objects, 1,000 keys per request; keys already gone are fine. Throws naming the first key S3 refused. */
export async function deleteObjects(client: S3Client, bucket: string, keys: string[], options: RetryOptions = {}): Promise<void> {
  for (let start = 0; start < keys.length; start += 1000) {
    const batch = keys.slice(start, start + 1000);
    let result: DeleteObjectsCommandOutput;
    try {
      result = await withS3Retries(
        () => client.send(new DeleteObjectsCommand({ Bucket: bucket, Delete: { Objects: batch.map((Key) => ({ Key })), Quiet: true } })),
        { ...options, what: `delete ${batch.length} objects in s3://${bucket}` },
      );
    } catch (error) {
      throw describeS3Error(error, { bucket, key: batch[0]!, action: 'delete' });
    }
    const failed = result.Errors?.[0];
    if (failed) throw new Error(`delete s3://${bucket}/${failed.Key}: ${failed.Code} ${failed.Message ?? ''}`.trim());
  }
}
