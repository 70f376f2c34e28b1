import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { contentTypeOf, joinKey, uploadObject, type S3Client } from '@imgpipe/s3';
import { PUBLICATION_FILE, PUBLICATION_FORMAT, publicationId, sha256, type PublicationManifest } from '@imgpipe/kit';
import { listFilesRecursive } from './s3-server.js';

/**
 * Publish a model directory as upload-s3 lays it out (prefix/p/<id>/model/… and prefix/publication.json last),
 * for tests of readers that should not depend on upload-s3. Returns the manifest.
 */
export async function publishModelDir(client: S3Client, bucket: string, prefix: string, modelDir: string): Promise<PublicationManifest> {
  const files = await Promise.all(
    (await listFilesRecursive(modelDir)).map(async (file) => {
      const bytes = await readFile(join(modelDir, file));
      return { name: `model/${file}`, bytes, size: bytes.length, sha256: sha256(bytes) };
    }),
  );
  const id = publicationId(files);
  for (const file of files) {
    await uploadObject(
      client,
      bucket,
      joinKey(prefix, `p/${id}/${file.name}`),
      { bytes: file.bytes },
      { contentType: contentTypeOf(file.name), metadata: { sha256: file.sha256 } },
    );
  }
  const manifest: PublicationManifest = {
    format: PUBLICATION_FORMAT,
    id,
    run: 'test',
    created: new Date().toISOString(),
    objects: files.map((f) => ({ name: f.name, key: `p/${id}/${f.name}`, size: f.size, sha256: f.sha256 })),
  };
  await uploadObject(client, bucket, joinKey(prefix, PUBLICATION_FILE), { bytes: JSON.stringify(manifest) }, { contentType: 'application/json' });
  return manifest;
}
