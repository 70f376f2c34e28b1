import { join } from 'node:path';
import { contentTypeOf, createBucket, createS3Client, joinKey, uploadObject, type S3Client } from '@imgpipe/s3';
import { CONFIG_SCHEMA, walkDir, type ImgpipeConfig } from '@imgpipe/kit';
import { buildApp } from 'fauxqs';
import pLimit from 'p-limit';
import { addConditionalWrites } from './s3-conditional-writes.js';
import { addListMultipartUploads } from './s3-multipart-list.js';

export const TEST_ACCESS_KEY_ID = 'imgpipe-test';
export const TEST_SECRET_ACCESS_KEY = 'imgpipe-test-secret';
export const TEST_REGION = 'us-east-1';

export interface S3Server {
  /** http://127.0.0.1:PORT */
  endpoint: string;
  port: number;
  /** An @imgpipe/s3 client (path-style, test credentials) pointed at the server. */
  client: S3Client;
  /** The `aws` config section that reaches this server (for createS3Client and runX options). */
  aws: ImgpipeConfig['aws'];
  /** Environment variables a spawned bin needs to reach this server. */
  env: Record<string, string>;
  createBucket(name: string): Promise<void>;
  close(): Promise<void>;
}

/** The `aws` config section for an endpoint, with the test credentials. */
export function testAwsConfig(endpoint: string): ImgpipeConfig['aws'] {
  return {
    bucket_name: '',
    aws_access_key_id: TEST_ACCESS_KEY_ID,
    aws_secret_access_key: TEST_SECRET_ACCESS_KEY,
    aws_default_region: TEST_REGION,
    results_upload_path: CONFIG_SCHEMA['aws.results_upload_path'].default,
    endpoint,
  };
}

/** A request as the server's `beforeRequest` hook sees it. */
export interface S3Request {
  method: string;
  bucket: string;
  key: string;
  query: URLSearchParams;
}

export interface S3ServerOptions {
  /**
   * Honour `If-None-Match` / `If-Match` on PutObject as Amazon S3 does (412 PreconditionFailed). Default true;
   * false acts like a store that ignores them (fauxqs alone, some S3-compatible servers).
   */
  conditionalWrites?: boolean;
  /** Awaited before each request is handled: to slow the server down, or to act at a point of a tool's work. */
  beforeRequest?: (request: S3Request) => Promise<void> | void;
}

/**
 * A local S3-compatible server (fauxqs, objects in memory) on 127.0.0.1 and a free port. It is built with
 * `buildApp` and bound to loopback only: fauxqs's CLI and startFauxqs() listen on every interface with no auth.
 * fauxqs refuses request bodies over 11 MiB, so multipart parts must stay at or under 10 MiB. ListMultipartUploads,
 * which fauxqs lacks, is added by s3-multipart-list.ts, and conditional PutObject by s3-conditional-writes.ts.
 */
export async function startS3Server(options: S3ServerOptions = {}): Promise<S3Server> {
  const app = buildApp({ logger: false });
  const { beforeRequest } = options;
  if (beforeRequest) {
    app.addHook('onRequest', async (request) => {
      const url = new URL(request.url, 'http://localhost');
      const [, bucket = '', ...rest] = url.pathname.split('/');
      await beforeRequest({
        method: request.method,
        bucket: decodeURIComponent(bucket),
        key: rest.map(decodeURIComponent).join('/'),
        query: url.searchParams,
      });
    });
  }
  addListMultipartUploads(app);
  if (options.conditionalWrites !== false) addConditionalWrites(app);
  await app.listen({ port: 0, host: '127.0.0.1' });
  const address = app.server.address();
  if (!address || typeof address === 'string') throw new Error('fauxqs: no TCP address after listen');
  const port = address.port;
  const endpoint = `http://127.0.0.1:${port}`;
  const aws = testAwsConfig(endpoint);
  const client = createS3Client(aws, { concurrency: 32 });
  return {
    endpoint,
    port,
    client,
    aws,
    env: {
      S3_ENDPOINT: endpoint,
      AWS_ACCESS_KEY_ID: TEST_ACCESS_KEY_ID,
      AWS_SECRET_ACCESS_KEY: TEST_SECRET_ACCESS_KEY,
      AWS_REGION: TEST_REGION,
      // Keep spawned bins away from the developer's real AWS profile and instance metadata.
      AWS_EC2_METADATA_DISABLED: 'true',
      AWS_CONFIG_FILE: '/dev/null',
      AWS_SHARED_CREDENTIALS_FILE: '/dev/null',
    },
    async createBucket(name) {
      await createBucket(client, name);
    },
    async close() {
      client.destroy();
      await app.close();
    },
  };
}

/** Every file under `dir`, as paths relative to it with forward slashes, sorted. */
export async function listFilesRecursive(dir: string): Promise<string[]> {
  return (await walkDir(dir)).filter((e) => e.kind === 'file').map((e) => e.path);
}

/**
 * Put every file under `dir` into `s3://bucket/prefix/...` (the relative path becomes the rest of the key), e.g.
 * a generated image set for the tests and the demo. Returns the keys, sorted.
 */
export async function uploadDirectory(
  client: S3Client,
  bucket: string,
  prefix: string,
  dir: string,
  options: { concurrency?: number } = {},
): Promise<string[]> {
  const files = await listFilesRecursive(dir);
  const keys = files.map((file) => joinKey(prefix, file));
  await pLimit(options.concurrency ?? 16).map(files, (file, index) =>
    uploadObject(client, bucket, keys[index]!, { path: join(dir, file) }, { contentType: contentTypeOf(file) }),
  );
  return keys;
}
