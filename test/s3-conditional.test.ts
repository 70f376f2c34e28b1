import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startS3Server, type S3Server } from '@imgpipe/test-utils';
import { putObjectIf, readObjectVersion } from '@imgpipe/s3';

describe('conditional PutObject against the local S3 server (as Amazon S3 answers it)', () => {
  let server: S3Server;
  let loose: S3Server;
  before(async () => {
    server = await startS3Server();
    loose = await startS3Server({ conditionalWrites: false });
    await server.createBucket('b');
    await loose.createBucket('b');
  });
  after(async () => {
    await server.close();
    await loose.close();
  });

  it('If-None-Match: * lets exactly one of many racing writers create the key', async () => {
    const results = await Promise.all(
      Array.from({ length: 8 }, (_, i) => putObjectIf(server.client, 'b', 'lease', `writer ${i}`, { ifNoneMatch: '*' })),
    );
    const won = results.flatMap((r, i) => (r === 'refused' ? [] : [i]));
    assert.equal(won.length, 1, `one winner: ${JSON.stringify(results)}`);
    assert.equal((await readObjectVersion(server.client, 'b', 'lease'))?.bytes.toString(), `writer ${won[0]}`);
  });

  it('If-Match writes only over the ETag given, and not where the key is missing', async () => {
    const first = await putObjectIf(server.client, 'b', 'm', 'one', { ifNoneMatch: '*' });
    assert.notEqual(first, 'refused');
    const etag = (first as { etag: string }).etag;
    assert.equal(await putObjectIf(server.client, 'b', 'm', 'two', { ifMatch: 'ffffffffffffffffffffffffffffffff' }), 'refused');
    const second = await putObjectIf(server.client, 'b', 'm', 'two', { ifMatch: etag });
    assert.notEqual(second, 'refused');
    assert.equal(await putObjectIf(server.client, 'b', 'm', 'three', { ifMatch: etag }), 'refused', 'the old ETag no longer holds');
    assert.equal(await putObjectIf(server.client, 'b', 'missing', 'x', { ifMatch: etag }), 'refused');
    assert.equal((await readObjectVersion(server.client, 'b', 'm'))?.bytes.toString(), 'two');
    assert.equal(await readObjectVersion(server.client, 'b', 'missing'), undefined);
  });

  it('a store that ignores the headers (conditionalWrites: false) writes anyway, which upload-s3 probes for', async () => {
    assert.notEqual(await putObjectIf(loose.client, 'b', 'k', 'one', { ifNoneMatch: '*' }), 'refused');
    assert.notEqual(await putObjectIf(loose.client, 'b', 'k', 'two', { ifNoneMatch: '*' }), 'refused');
  });
});
