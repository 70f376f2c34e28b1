import { abortMultipartUpload, deleteObjects, joinKey, listMultipartUploads, listObjects, type RetryOptions, type S3Client } from '@imgpipe/s3';
import { PUBLICATION_FILE, PUBLICATION_OBJECTS_DIR, type PublicationManifest } from '@imgpipe/kit';
import { RUN_DIRS, RUN_FILES, SNIPPET_NAME } from './layout.js';

/**
 * Abort every multipart upload under `keyPrefix` (a killed publisher's). Returns how many. A server without
 * ListMultipartUploads gets a warning, not a failure: the publication itself does not depend on it.
 */
export async function abortUploadsUnder(client: S3Client, bucket: string, keyPrefix: string, options: RetryOptions = {}): Promise<number> {
  let uploads: Awaited<ReturnType<typeof listMultipartUploads>>;
  try {
    uploads = await listMultipartUploads(client, bucket, keyPrefix, options);
  } catch (error) {
    options.log?.warn('cannot list multipart uploads under s3://%s/%s, so stale ones are not aborted: %s', bucket, keyPrefix, (error as Error).message);
    return 0;
  }
  for (const upload of uploads) await abortMultipartUpload(client, bucket, upload.key, upload.uploadId, options);
  return uploads.length;
}

/** Whether a key (relative to the prefix) is something upload-s3 wrote before manifests: the flat published layout. */
function isFlatLayout(name: string): boolean {
  return RUN_FILES.includes(name) || name === SNIPPET_NAME || RUN_DIRS.some((dir) => name.startsWith(`${dir}/`));
}

/**
 * After the commit: delete what older publications left under the prefix (other p/<id>/ objects, and the flat
 * layout of upload-s3 versions before manifests). Other objects under the prefix are not touched. Returns the count.
 */
export async function removeLeftovers(client: S3Client, bucket: string, prefix: string, manifest: PublicationManifest, options: RetryOptions = {}): Promise<number> {
  const keep = new Set([PUBLICATION_FILE, ...manifest.objects.map((o) => o.key)]);
  const doomed: string[] = [];
  for await (const object of listObjects(client, bucket, { ...options, ...(prefix ? { prefix } : {}) })) {
    const name = object.key.slice(prefix.length);
    if (keep.has(name)) continue;
    if (name.startsWith(PUBLICATION_OBJECTS_DIR) || isFlatLayout(name)) doomed.push(joinKey(prefix, name));
  }
  await deleteObjects(client, bucket, doomed, options);
  return doomed.length;
}
