import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { createServer } from 'node:http';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import pLimit from 'p-limit';
import {
  createS3Client,
  describeS3Error,
  downloadObject,
  downloadPrefix,
  headObject,
  listObjects,
  parseS3Uri,
  readObjectBytes,
  safeLocalPath,
  uploadObject,
} from '@imgpipe/s3';
import { FailureError, InputError, sha256, UsageError } from '@imgpipe/kit';
import { makeTempDir, startFaultyProxy, startS3Server, testAwsConfig, uploadDirectory, type S3Server, type TempDir } from '@imgpipe/test-utils';

describe('@imgpipe/s3 client against the local server', () => {
  let server: S3Server;
  let temp: TempDir;
  before(async () => {
    server = await startS3Server();
    temp = await makeTempDir();
    await server.createBucket('core');
  });
  after(async () => {
    await server.close();
    await temp.remove();
  });

  it('puts and gets an object byte for byte', async () => {
    const bytes = randomBytes(4096);
    const put = await uploadObject(
      server.client,
      'core',
      'a/b/c.bin',
      { bytes },
      { contentType: 'application/octet-stream', metadata: { sha256: sha256(bytes) } },
    );
    assert.equal(put.multipart, false);
    const head = await headObject(server.client, 'core', 'a/b/c.bin');
    assert.equal(head?.size, 4096);
    assert.equal(head?.metadata.sha256, sha256(bytes));
    assert.deepEqual(await readObjectBytes(server.client, 'core', 'a/b/c.bin'), bytes);
    const path = join(temp.path, 'got', 'c.bin');
    const got = await downloadObject(server.client, 'core', 'a/b/c.bin', path);
    assert.equal(got.bytes, 4096);
    assert.equal(sha256(await readFile(path)), sha256(bytes));
    assert.equal(await headObject(server.client, 'core', 'a/b/missing.bin'), undefined);
  });

  it('uploads above the threshold in parts of at most 10 MiB, and reads them back intact', async () => {
    const bytes = randomBytes(13 * 1024 * 1024 + 17);
    const file = join(temp.path, 'big.bin');
    await writeFile(file, bytes);
    const put = await uploadObject(server.client, 'core', 'big/big.bin', { path: file }, { partSize: 5 * 1024 * 1024 });
    assert.equal(put.multipart, true);
    const head = await headObject(server.client, 'core', 'big/big.bin');
    assert.equal(head?.size, bytes.length);
    assert.match(head?.etag ?? '', /-3$/, 'a 3-part multipart ETag');
    const path = join(temp.path, 'big-back.bin');
    await downloadObject(server.client, 'core', 'big/big.bin', path);
    assert.equal(sha256(await readFile(path)), sha256(bytes));
  });

  it('lists more than 1,000 keys by following continuation tokens', async () => {
    const count = 1_234;
    const keys = Array.from({ length: count }, (_, i) => `many/${String(i).padStart(5, '0')}.txt`);
    await pLimit(16).map(keys, (key, i) => uploadObject(server.client, 'core', key, { bytes: `object ${i}` }));
    const listed: string[] = [];
    for await (const object of listObjects(server.client, 'core', { prefix: 'many/' })) listed.push(object.key);
    assert.deepEqual(listed.sort(), keys);
    // Pages smaller than 1,000 (as some servers send) are followed too.
    const small: string[] = [];
    for await (const object of listObjects(server.client, 'core', { prefix: 'many/', pageSize: 97 })) small.push(object.key);
    assert.equal(small.length, count);
    assert.equal(new Set(small).size, count);
  });

  it('downloads a prefix into a directory', async () => {
    await uploadObject(server.client, 'core', 'tree/x/1.txt', { bytes: 'one' });
    await uploadObject(server.client, 'core', 'tree/2.txt', { bytes: 'two' });
    const dest = join(temp.path, 'tree');
    const got = await downloadPrefix(server.client, 'core', 'tree', dest);
    assert.equal(got.length, 2);
    assert.equal(await readFile(join(dest, 'x', '1.txt'), 'utf8'), 'one');
    assert.equal(await readFile(join(dest, '2.txt'), 'utf8'), 'two');
  });

  it('puts a local directory into a bucket (test-utils uploadDirectory)', async () => {
    const dir = join(temp.path, 'set');
    await mkdir(join(dir, 'cat'), { recursive: true });
    await writeFile(join(dir, 'cat', '1.jpg'), 'jpeg bytes');
    await writeFile(join(dir, 'images.csv'), 'bucket,s3_image,category,label\n');
    const keys = await uploadDirectory(server.client, 'core', 'demo/', dir);
    assert.deepEqual(keys, ['demo/cat/1.jpg', 'demo/images.csv']);
    assert.equal((await readObjectBytes(server.client, 'core', 'demo/cat/1.jpg')).toString(), 'jpeg bytes');
    assert.equal((await headObject(server.client, 'core', 'demo/cat/1.jpg'))?.contentType, 'image/jpeg');
    assert.match((await headObject(server.client, 'core', 'demo/images.csv'))?.contentType ?? '', /^text\/csv/);
  });

  it('retries through dropped connections and 503s', async () => {
    const proxy = await startFaultyProxy(server.endpoint, { dropShare: 0.25, error503Share: 0.25, seed: 7 });
    const client = createS3Client(testAwsConfig(proxy.endpoint), { maxAttempts: 1, concurrency: 4 });
    try {
      const bytes = randomBytes(20_000);
      await uploadObject(server.client, 'core', 'flaky.bin', { bytes });
      for (let i = 0; i < 10; i++) {
        const path = join(temp.path, 'flaky', `${i}.bin`);
        await downloadObject(client, 'core', 'flaky.bin', path, { retries: 12, baseDelayMs: 5 });
        assert.equal(sha256(await readFile(path)), sha256(bytes));
      }
      assert.ok(proxy.counts.dropped + proxy.counts.errors503 > 0, 'the proxy injected faults');
    } finally {
      client.destroy();
      await proxy.close();
    }
  });

  it('aborts and retries a stalled body', async () => {
    const proxy = await startFaultyProxy(server.endpoint, { stallShare: 0.5, seed: 3 });
    const client = createS3Client(testAwsConfig(proxy.endpoint), { maxAttempts: 1 });
    try {
      const bytes = randomBytes(50_000);
      await uploadObject(server.client, 'core', 'stall.bin', { bytes });
      for (let i = 0; i < 4; i++) {
        const path = join(temp.path, 'stall', `${i}.bin`);
        await downloadObject(client, 'core', 'stall.bin', path, { retries: 12, baseDelayMs: 5, stallMs: 300 });
        assert.equal(sha256(await readFile(path)), sha256(bytes));
      }
      assert.ok(proxy.counts.stalled > 0, 'the proxy stalled some bodies');
    } finally {
      client.destroy();
      await proxy.close();
    }
  });

  it('refuses a body that is not the bytes its MD5 ETag names (retried, never renamed into place)', async () => {
    // A store that answers GET with the right length and ETag but one byte flipped, for the first `bad` answers.
    const bytes = randomBytes(5_000);
    const etag = createHash('md5').update(bytes).digest('hex');
    let answers = 0;
    let bad = 2;
    const store = createServer((_request, response) => {
      answers += 1;
      const body = Buffer.from(bytes);
      if (answers <= bad) body[1234] = body[1234]! ^ 0xff;
      response.writeHead(200, { 'content-length': body.length, etag: `"${etag}"`, 'content-type': 'application/octet-stream' });
      response.end(body);
    });
    await new Promise<void>((resolve) => store.listen(0, '127.0.0.1', resolve));
    const { port } = store.address() as { port: number };
    const client = createS3Client(testAwsConfig(`http://127.0.0.1:${port}`), { maxAttempts: 1 });
    const dir = join(temp.path, 'corrupt');
    try {
      const got = await downloadObject(client, 'core', 'x.bin', join(dir, 'x.bin'), { retries: 3, baseDelayMs: 5 });
      assert.equal(answers, 3, 'two corrupted answers retried');
      assert.equal(got.retries, 2);
      assert.equal(sha256(await readFile(join(dir, 'x.bin'))), sha256(bytes));
      answers = 0;
      bad = 100;
      await assert.rejects(downloadObject(client, 'core', 'y.bin', join(dir, 'y.bin'), { retries: 2, baseDelayMs: 5 }), (error: Error) => {
        assert.match(error.message, /s3:\/\/core\/y\.bin/);
        assert.match(error.message, new RegExp(`MD5 [0-9a-f]{32} is not its ETag ${etag}`));
        return true;
      });
      assert.deepEqual(await readdir(dir), ['x.bin'], 'nothing under the final name, no temp file left');
    } finally {
      client.destroy();
      await new Promise((resolve) => store.close(resolve));
    }
  });

  it('names the object and the cause in errors', async () => {
    await assert.rejects(downloadObject(server.client, 'core', 'nope/missing.jpg', join(temp.path, 'm.jpg')), (error: unknown) => {
      assert.ok(error instanceof InputError);
      assert.match(error.message, /s3:\/\/core\/nope\/missing\.jpg: no such key/);
      return true;
    });
    await assert.rejects(readObjectBytes(server.client, 'no-such-bucket', 'k'), (error: unknown) => {
      assert.ok(error instanceof InputError || error instanceof FailureError);
      assert.match((error as Error).message, /no-such-bucket/);
      return true;
    });
    const dead = createS3Client(testAwsConfig('http://127.0.0.1:1'), { maxAttempts: 1 });
    await assert.rejects(readObjectBytes(dead, 'core', 'k', { retries: 1, baseDelayMs: 1 }), (error: unknown) => {
      assert.ok(error instanceof FailureError);
      assert.match((error as Error).message, /cannot reach the S3 endpoint.*ECONNREFUSED.*--endpoint/);
      return true;
    });
    dead.destroy();
    const denied = describeS3Error(Object.assign(new Error('denied'), { name: 'AccessDenied', $metadata: { httpStatusCode: 403 } }), {
      bucket: 'b',
      key: 'k',
      action: 'download',
    });
    assert.match(denied.message, /s3:\/\/b\/k: access denied/);
    const refused = describeS3Error(Object.assign(new Error('x'), { name: 'InvalidAccessKeyId', $metadata: { httpStatusCode: 403 } }), {
      bucket: 'b',
      key: 'k',
    });
    assert.match(refused.message, /credentials were refused.*AWS_ACCESS_KEY_ID/);
  });
});

describe('S3 URIs and safe local paths', () => {
  it('parses s3:// URIs', () => {
    assert.deepEqual(parseS3Uri('s3://bucket/a/b.csv'), { bucket: 'bucket', key: 'a/b.csv' });
    assert.deepEqual(parseS3Uri('s3://bucket'), { bucket: 'bucket', key: '' });
    assert.throws(() => parseS3Uri('http://x/y'), UsageError);
  });

  it('refuses keys that would leave the destination', () => {
    assert.equal(safeLocalPath('data', 'cats/1.jpg'), join('data', 'cats', '1.jpg'));
    assert.equal(safeLocalPath('data', './cats//1.jpg'), join('data', 'cats', '1.jpg'));
    for (const key of ['../x.jpg', 'a/../../x.jpg', '/etc/passwd', 'a\\..\\..\\x', 'C:/x.jpg', 'a\0b.jpg', '', 'dir/', '.', 'a/..']) {
      assert.throws(() => safeLocalPath('data', key), InputError, JSON.stringify(key));
    }
  });
});
