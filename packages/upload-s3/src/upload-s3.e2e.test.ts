import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { execa } from 'execa';
import { headObject, listMultipartUploads, listObjects } from '@imgpipe/s3';
import { writeJsonAtomic } from '@imgpipe/kit';
import { makeTempDir, startFaultyProxy, startS3Server, type S3Server, type TempDir } from '@imgpipe/test-utils';

// The real bin, which imports dist/: run `npx tsc -b` first.
const BIN = fileURLToPath(new URL('../bin/upload-s3.js', import.meta.url));

describe('upload-s3 (the bin, end to end)', () => {
  let server: S3Server;
  let temp: TempDir;
  const run = (args: string[], input?: string) =>
    execa('node', [BIN, ...args], {
      cwd: temp.path,
      env: { ...server.env, NODE_NO_WARNINGS: '1' },
      reject: false,
      ...(input === undefined ? {} : { input }),
    });

  before(async () => {
    server = await startS3Server();
    temp = await makeTempDir();
    await server.createBucket('pub');
    // A minimal run directory: the bin only moves files, so the model files need not be loadable here.
    await mkdir(join(temp.path, 'runs', 'r', 'model', 'head'), { recursive: true });
    await writeJsonAtomic(join(temp.path, 'runs', 'r', 'model', 'card.json'), { format: 'imgpipe-model/1', labels: ['cat', 'dog'] });
    await writeFile(join(temp.path, 'runs', 'r', 'model', 'head', 'model.json'), '{}');
    await writeFile(join(temp.path, 'runs', 'r', 'results.csv'), 'val_accuracy\n0.9\n');
  });
  after(async () => {
    await server.close();
    await temp.remove();
  });

  it('publishes a run named by a pointer on stdin, then by --run, and prints one pointer line', async () => {
    const piped = await run(
      ['--bucket', 'pub', '--prefix', 'results/'],
      `${JSON.stringify({ kind: 'run', path: 'runs/r', best: 'runs/r/model' })}\n`,
    );
    assert.equal(piped.exitCode, 0, piped.stderr);
    const pointer = JSON.parse(piped.stdout) as { kind: string; id: string; uploaded: number; objects: string[] };
    assert.equal(pointer.kind, 'upload');
    assert.equal(pointer.uploaded, 4);
    const keys: string[] = [];
    for await (const object of listObjects(server.client, 'pub', { prefix: 'results/' })) keys.push(object.key);
    const root = `results/p/${pointer.id}/`;
    assert.deepEqual(
      keys.sort(),
      ['results/publication.json', ...['load_model.mjs', 'model/card.json', 'model/head/model.json', 'results.csv'].map((n) => root + n)].sort(),
    );

    const again = await run(['--run', 'runs/r', '--prefix', 's3://pub/results/']);
    assert.equal(again.exitCode, 0, again.stderr);
    assert.equal((JSON.parse(again.stdout) as { uploaded: number }).uploaded, 0);
    assert.match(again.stderr, /4 already there/);
  });

  it('SIGINT aborts the multipart upload in flight, writes no manifest and exits 130', async () => {
    // A 24 MB file goes up in 5 MiB parts; a proxy adding latency to every chunk keeps it in flight long enough.
    await mkdir(join(temp.path, 'runs', 'big', 'model', 'head'), { recursive: true });
    await writeJsonAtomic(join(temp.path, 'runs', 'big', 'model', 'card.json'), { format: 'imgpipe-model/1', labels: ['cat', 'dog'] });
    await mkdir(join(temp.path, 'runs', 'big', 'plots'));
    await writeFile(join(temp.path, 'runs', 'big', 'plots', 'big.png'), randomBytes(24 * 1024 * 1024));
    const proxy = await startFaultyProxy(server.endpoint, { latencyMs: 20 });
    try {
      const child = execa('node', [BIN, '--run', 'runs/big', '--prefix', 's3://pub/big/', '--part-size', '5'], {
        cwd: temp.path,
        env: { ...server.env, S3_ENDPOINT: proxy.endpoint, NODE_NO_WARNINGS: '1' },
        reject: false,
      });
      const deadline = Date.now() + 60_000;
      while ((await listMultipartUploads(server.client, 'pub', 'big/')).length === 0) {
        assert.ok(Date.now() < deadline, 'a multipart upload started');
        await sleep(50);
      }
      child.kill('SIGINT');
      const result = await child;
      assert.equal(result.exitCode, 130, result.stderr);
      assert.match(result.stderr, /SIGINT: aborting/);
      assert.deepEqual(await listMultipartUploads(server.client, 'pub', 'big/'), [], 'no multipart upload left');
      assert.equal(await headObject(server.client, 'pub', 'big/publication.json'), undefined, 'nothing committed');
      assert.equal(await headObject(server.client, 'pub', 'big/publication.lock'), undefined, 'the lease is released');
    } finally {
      await proxy.close();
    }
  });

  it('exits 2 naming what is missing', async () => {
    const noBucket = await run(['--run', 'runs/r']);
    assert.equal(noBucket.exitCode, 2);
    assert.match(noBucket.stderr, /no bucket: pass --bucket/);
    const noRun = await run(['--bucket', 'pub', '--run', 'nowhere']);
    assert.equal(noRun.exitCode, 2);
    assert.match(noRun.stderr, /nowhere: no such directory/);
    const badPointer = await run(['--bucket', 'pub'], 'not a pointer\n');
    assert.equal(badPointer.exitCode, 2);
    assert.match(badPointer.stderr, /expected a JSON pointer line/);
  });
});
