import { mkdir, rm } from 'node:fs/promises';
import pLimit from 'p-limit';
import { InputError, parsePublication, PUBLICATION_FILE, publicationObjectsUnder, sha256File, type PublicationManifest } from '@imgpipe/kit';
import { formatS3Uri, joinKey, type RetryOptions } from './s3.js';
import { readObjectVersion } from './s3-conditional.js';
import { downloadObject, readObjectBytes, safeLocalPath, type DownloadOptions } from './s3-download.js';
import type { S3Client } from './s3-objects.js';

function isMissing(error: unknown): boolean {
  for (let e = error as { name?: string; cause?: unknown; $metadata?: { httpStatusCode?: number } } | undefined; e; e = e.cause as typeof e) {
    if (e.name === 'NoSuchKey' || e.name === 'NotFound' || e.$metadata?.httpStatusCode === 404) return true;
  }
  return false;
}

/** The publication manifest under a prefix (`<prefix>/publication.json`), or undefined when there is none. */
export async function readPublication(
  client: S3Client,
  bucket: string,
  prefix: string,
  options: RetryOptions = {},
): Promise<PublicationManifest | undefined> {
  const key = joinKey(prefix, PUBLICATION_FILE);
  let bytes: Buffer;
  try {
    bytes = await readObjectBytes(client, bucket, key, options);
  } catch (error) {
    if (isMissing(error)) return undefined;
    throw error;
  }
  return parsePublication(bytes.toString('utf8'), formatS3Uri(bucket, key));
}

/** The publication manifest under a prefix and the ETag it was read under (for a conditional commit), or undefined. */
export async function readPublicationVersion(
  client: S3Client,
  bucket: string,
  prefix: string,
  options: RetryOptions = {},
): Promise<{ manifest: PublicationManifest; etag: string } | undefined> {
  const key = joinKey(prefix, PUBLICATION_FILE);
  const found = await readObjectVersion(client, bucket, key, options);
  return found && { manifest: parsePublication(found.bytes.toString('utf8'), formatS3Uri(bucket, key)), etag: found.etag };
}

interface DownloadPublicationOptions extends DownloadOptions {
  /** Only the objects under this name in the published layout (e.g. 'model/'), placed relative to it. */
  dir?: string;
  concurrency?: number;
  /** Times to start over when the publication is replaced while it is read (default 3). */
  attempts?: number;
}

/**
 * Download what a publication's manifest lists (or the part of it under `dir`) into `dest`, each object checked
 * against the manifest's size and sha256. A publication replaced while it is read (its objects removed) is read
 * again from the new manifest, so `dest` ends up holding one publication, never a mix. `dest` is emptied first.
 */
export async function downloadPublication(
  client: S3Client,
  bucket: string,
  prefix: string,
  dest: string,
  options: DownloadPublicationOptions = {},
): Promise<{ manifest: PublicationManifest; files: { name: string; path: string; bytes: number }[] }> {
  const attempts = options.attempts ?? 3;
  const where = formatS3Uri(bucket, joinKey(prefix, PUBLICATION_FILE));
  for (let attempt = 1; ; attempt++) {
    const manifest = await readPublication(client, bucket, prefix, options);
    if (!manifest) throw new InputError(`${where} not found: nothing is published there (upload-s3 writes it last; check the prefix)`);
    const objects = publicationObjectsUnder(manifest, options.dir ?? '');
    if (objects.length === 0) throw new InputError(`${where}: publication ${manifest.id} holds nothing under ${options.dir}`);
    await rm(dest, { recursive: true, force: true });
    await mkdir(dest, { recursive: true });
    const limit = pLimit(options.concurrency ?? 8);
    let failure: { error: unknown } | undefined;
    try {
      // Every download settles before dest is removed or refilled (one still writing would race the removal);
      // after a failure the queued ones give up at once.
      const settled = await Promise.allSettled(
        objects.map((object) =>
          limit(async () => {
            if (failure) throw failure.error;
            const key = joinKey(prefix, object.key);
            const path = safeLocalPath(dest, object.name);
            const { bytes } = await downloadObject(client, bucket, key, path, options);
            if (bytes !== object.size)
              throw new InputError(`${formatS3Uri(bucket, key)}: ${bytes} bytes, ${where} lists ${object.size}; refusing a changed object`);
            const digest = await sha256File(path);
            if (digest !== object.sha256) {
              throw new InputError(
                `${formatS3Uri(bucket, key)}: sha256 ${digest.slice(0, 12)}… differs from ${object.sha256.slice(0, 12)}… in ${where}; refusing a corrupt or changed object`,
              );
            }
            return { name: object.name, path, bytes };
          }).catch((error: unknown) => {
            failure ??= { error };
            throw error;
          }),
        ),
      );
      if (failure) throw failure.error;
      const files = settled.map((result) => (result as PromiseFulfilledResult<{ name: string; path: string; bytes: number }>).value);
      return { manifest, files };
    } catch (error) {
      // Objects gone because a newer publication replaced this one: start over from the new manifest.
      const now = attempt < attempts && isMissing(error) ? await readPublication(client, bucket, prefix, options).catch(() => undefined) : undefined;
      if (now && now.id !== manifest.id) continue;
      await rm(dest, { recursive: true, force: true });
      throw error;
    }
  }
}
