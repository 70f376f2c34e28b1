import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { isMd5Etag } from './s3-objects.js';

interface FileDigest {
  size: number;
  md5: string;
  sha256: string;
}

/** Size, MD5 (to compare with single-part ETags) and sha256 of a file, in one pass. */
export async function digestFile(path: string): Promise<FileDigest> {
  const md5 = createHash('md5');
  const sha = createHash('sha256');
  let size = 0;
  for await (const chunk of createReadStream(path) as AsyncIterable<Buffer>) {
    md5.update(chunk);
    sha.update(chunk);
    size += chunk.length;
  }
  return { size, md5: md5.digest('hex'), sha256: sha.digest('hex') };
}

/**
 * The local file's digest when it holds the object, else undefined; one read. It holds it when it has the same
 * size, and the same MD5 when the ETag is one (multipart ETags are not content hashes, so size and a `sha256`
 * metadata entry are what can be compared).
 */
export async function matchingDigest(
  path: string,
  object: { size: number; etag: string; metadata?: Record<string, string> },
): Promise<FileDigest | undefined> {
  const info = await stat(path).catch(() => undefined);
  if (!info?.isFile() || info.size !== object.size) return undefined;
  const digest = await digestFile(path);
  const sha = object.metadata?.sha256;
  if (sha) return digest.sha256 === sha ? digest : undefined;
  if (!isMd5Etag(object.etag)) return digest;
  return digest.md5 === object.etag.toLowerCase() ? digest : undefined;
}
