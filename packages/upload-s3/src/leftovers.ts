import pLimit from 'p-limit';
import {
  abortMultipartUpload,
  deleteObjects,
  headObject,
  joinKey,
  listMultipartUploads,
  listObjects,
  type RetryOptions,
  type S3Client,
} from '@imgpipe/s3';
import { PUBLICATION_FILE, PUBLICATION_LEASE_FILE, type PublicationManifest } from '@imgpipe/kit';
import { RUN_DIRS, RUN_FILES, SNIPPET_NAME } from './layout.js';

/**
 * Abort the multipart uploads under `keyPrefix` that were started before `before` (a killed publisher's). Returns
 * how many. A server without ListMultipartUploads gets a warning, not a failure: the publication does not depend on it.
 */
export async function abortUploadsUnder(
  client: S3Client,
  bucket: string,
  keyPrefix: string,
  before: Date,
  options: RetryOptions = {},
): Promise<number> {
  let uploads: Awaited<ReturnType<typeof listMultipartUploads>>;
  try {
    uploads = await listMultipartUploads(client, bucket, keyPrefix, options);
  } catch (error) {
    options.log?.warn(
      'cannot list multipart uploads under s3://%s/%s, so stale ones are not aborted: %s',
      bucket,
      keyPrefix,
      (error as Error).message,
    );
    return 0;
  }
  const stale = uploads.filter((u) => u.initiated !== undefined && u.initiated.getTime() < before.getTime());
  for (const upload of stale) await abortMultipartUpload(client, bucket, upload.key, upload.uploadId, options);
  return stale.length;
}

/** Whether a key (relative to the prefix) is in the layout upload-s3 wrote before manifests. */
function isFlatLayout(name: string): boolean {
  return RUN_FILES.includes(name) || name === SNIPPET_NAME || RUN_DIRS.some((dir) => name.startsWith(`${dir}/`));
}

/**
 * The pre-manifest flat layout under the prefix, only where imgpipe's marker proves it: a `load_model.mjs` at the
 * prefix carrying the `sha256` metadata upload-s3 set on everything it wrote, and then only the layout's keys that
 * carry it too. Anyone else's `model/…` or `results.csv` there has no such metadata and is left alone.
 */
async function provenFlatLayout(client: S3Client, bucket: string, prefix: string, options: RetryOptions): Promise<string[]> {
  if (!(await headObject(client, bucket, joinKey(prefix, SNIPPET_NAME), options))?.metadata.sha256) return [];
  const names = [...RUN_FILES, SNIPPET_NAME];
  for (const dir of RUN_DIRS) {
    for await (const object of listObjects(client, bucket, { ...options, prefix: `${joinKey(prefix, dir)}/` }))
      names.push(object.key.slice(prefix.length));
  }
  const heads = await pLimit(8).map(names.filter(isFlatLayout), async (name) =>
    (await headObject(client, bucket, joinKey(prefix, name), options))?.metadata.sha256 ? name : undefined,
  );
  return heads.filter((name): name is string => name !== undefined);
}

/**
 * What the new publication will remove after its commit (its manifest's `superseded`): the keys the current
 * manifest lists or still had to remove, and the proven flat layout, that exist now and that the new publication
 * does not list itself. Nothing is chosen by name alone.
 */
export async function supersededKeys(
  client: S3Client,
  bucket: string,
  prefix: string,
  current: PublicationManifest | undefined,
  ours: readonly string[],
  options: RetryOptions = {},
): Promise<string[]> {
  const keep = new Set([...ours, PUBLICATION_FILE, PUBLICATION_LEASE_FILE]);
  const listed = new Set([...(current?.objects ?? []).map((o) => o.key), ...(current?.superseded ?? [])]);
  const candidates = [...listed].filter((key) => !keep.has(key));
  const present = await pLimit(8).map(candidates, async (key) =>
    (await headObject(client, bucket, joinKey(prefix, key), options)) ? key : undefined,
  );
  const flat = (await provenFlatLayout(client, bucket, prefix, options)).filter((key) => !keep.has(key) && !listed.has(key));
  return [...present.filter((key): key is string => key !== undefined), ...flat].sort();
}

/**
 * After the commit: delete what `manifest.superseded` names. Where other publishers are not excluded (a store that
 * ignores conditional writes), nothing is deleted: between any check of the committed manifest and the delete,
 * another publisher can commit a manifest that lists those very objects (seen in CI: a publication whose
 * results.csv had just been deleted). They stay listed as superseded, so the first publication to a store that
 * honours conditional writes removes them. Returns the count deleted.
 */
export async function removeSuperseded(
  client: S3Client,
  bucket: string,
  prefix: string,
  manifest: PublicationManifest,
  options: RetryOptions & { exclusive: boolean },
): Promise<number> {
  const doomed = manifest.superseded ?? [];
  if (!options.exclusive && doomed.length > 0) {
    options.log?.warn(
      "s3://%s/%s: the store ignores conditional writes, so the %d superseded objects are kept (listed in the manifest's superseded): another publisher may be committing a manifest that lists them",
      bucket,
      prefix,
      doomed.length,
    );
    return 0;
  }
  await deleteObjects(
    client,
    bucket,
    doomed.map((key) => joinKey(prefix, key)),
    options,
  );
  return doomed.length;
}
