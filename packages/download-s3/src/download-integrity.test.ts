import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { hostname } from 'node:os';
import { mkdir, readdir, readFile, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { EXIT_LOCKED, ImgpipeError, lockPathFor, readCsvRows, sha256, silentLogger } from '@imgpipe/kit';
import { createS3Client, uploadObject } from '@imgpipe/s3';
import {
  listFilesRecursive,
  makeTempDir,
  startFaultyProxy,
  startS3Server,
  testAwsConfig,
  capture,
  type S3Server,
  type TempDir,
} from '@imgpipe/test-utils';
import { runDownloadS3, type DownloadS3Options } from './download.js';

const BUCKET = 'integrity';

describe('download-s3: content identity, links, locks, leftovers', () => {
  let server: S3Server;
  let temp: TempDir;
  const options = (extra: Partial<DownloadS3Options>): DownloadS3Options => ({
    csv: join(temp.path, 'images.csv'),
    dest: join(temp.path, 'data'),
    download: true,
    client: server.client,
    stdin: Readable.from([]),
    stdout: capture().stream,
    cwd: temp.path,
    log: silentLogger,
    ...extra,
  });

  before(async () => {
    server = await startS3Server();
    temp = await makeTempDir();
    await server.createBucket(BUCKET);
    for (const name of ['a', 'b', 'c']) await uploadObject(server.client, BUCKET, `img/${name}.jpg`, { bytes: `pixels of ${name}` });
    await writeFile(
      join(temp.path, 'images.csv'),
      `${['bucket,s3_image,category,label', ...['a', 'b', 'c'].map((n, i) => `${BUCKET},img/${n}.jpg,c${i % 2},${i % 2}`)].join('\n')}\n`,
    );
  });
  after(async () => {
    await server.close();
    await temp.remove();
  });

  it("records each file's sha256 in local_sha256, and the new one after the object changed", async () => {
    const out = capture();
    await runDownloadS3(options({ stdout: out.stream }));
    const { columns, rows } = await readCsvRows(Readable.from([out.text()]), { source: 'out' });
    assert.deepEqual(columns.slice(-2), ['local_image', 'local_sha256']);
    for (const row of rows) assert.equal(row.local_sha256, sha256(await readFile(row.local_image!)));
    await uploadObject(server.client, BUCKET, 'img/b.jpg', { bytes: 'new pixels of b' });
    const again = capture();
    await runDownloadS3(options({ stdout: again.stream }));
    const after = (await readCsvRows(Readable.from([again.text()]), { source: 'out' })).rows;
    assert.equal(after[1]!.local_sha256, sha256('new pixels of b'));
    assert.notEqual(after[1]!.local_sha256, rows[1]!.local_sha256);
    assert.equal(after[0]!.local_sha256, rows[0]!.local_sha256, 'skipped files keep their identity');
  });

  it('refuses rows that would write through a link leaving --dest and keeps the others', async () => {
    const dest = join(temp.path, 'linked');
    const outside = join(temp.path, 'outside');
    await mkdir(join(dest, 'other'), { recursive: true });
    await mkdir(outside, { recursive: true });
    await symlink(outside, join(dest, 'img'));
    await writeFile(join(outside, 'target.jpg'), 'precious');
    await symlink(join(outside, 'target.jpg'), join(dest, 'other', 'c.jpg'));
    await uploadObject(server.client, BUCKET, 'other/c.jpg', { bytes: 'c elsewhere' });
    await uploadObject(server.client, BUCKET, 'fine/d.jpg', { bytes: 'd' });
    const csv = join(temp.path, 'links.csv');
    await writeFile(csv, `bucket,s3_image,category,label\n${BUCKET},img/a.jpg,x,0\n${BUCKET},other/c.jpg,x,0\n${BUCKET},fine/d.jpg,x,0\n`);
    const out = capture();
    const result = await runDownloadS3(options({ csv, dest, stdout: out.stream }));
    assert.equal(result.exitCode, 2, 'refused rows are input errors');
    assert.equal(result.ok, 1);
    assert.match(result.failures[0]!.error ?? '', /outside --dest; refusing to write through a symbolic link/);
    assert.match(result.failures[1]!.error ?? '', /is a symbolic link; refusing to write through it/);
    assert.deepEqual(await readdir(outside), ['target.jpg'], 'nothing written outside --dest');
    assert.equal(await readFile(join(outside, 'target.jpg'), 'utf8'), 'precious');
    assert.equal(await readFile(join(dest, 'fine', 'd.jpg'), 'utf8'), 'd');
  });

  it('retries an images CSV on S3 whose connection drops mid-body', async () => {
    const lines = ['bucket,s3_image,category,label,local_image'];
    const present = join(temp.path, 'present.jpg');
    await writeFile(present, 'x');
    for (let i = 0; i < 6000; i++) lines.push(`${BUCKET},k/${i}.jpg,cat,0,${present}`);
    await uploadObject(server.client, BUCKET, 'lists/big.csv', { bytes: `${lines.join('\n')}\n` });
    const proxy = await startFaultyProxy(server.endpoint, { dropShare: 0.2, seed: 3 });
    const client = createS3Client(testAwsConfig(proxy.endpoint), { maxAttempts: 1 });
    try {
      const out = capture();
      const result = await runDownloadS3(options({ csv: `s3://${BUCKET}/lists/big.csv`, download: false, client, retries: 30, stdout: out.stream }));
      assert.equal(result.exitCode, 0);
      assert.equal(result.ok, 6000);
      assert.ok(proxy.counts.dropped > 0, `connections dropped: ${JSON.stringify(proxy.counts)}`);
    } finally {
      client.destroy();
      await proxy.close();
    }
  });

  it('leaves no temp file in --dest when downloads fail on dropped connections', async () => {
    const keys = Array.from({ length: 60 }, (_, i) => `drop/${i}.jpg`);
    for (const key of keys) await uploadObject(server.client, BUCKET, key, { bytes: Buffer.alloc(200_000, key) });
    const csv = join(temp.path, 'drop.csv');
    await writeFile(csv, `bucket,s3_image,category,label\n${keys.map((k) => `${BUCKET},${k},x,0`).join('\n')}\n`);
    const proxy = await startFaultyProxy(server.endpoint, { dropShare: 0.3, seed: 5 });
    const client = createS3Client(testAwsConfig(proxy.endpoint), { maxAttempts: 1 });
    const dest = join(temp.path, 'dropped');
    try {
      const result = await runDownloadS3(options({ csv, dest, client, retries: 0, concurrency: 8, maxFailures: 60 }));
      assert.ok(result.failed > 0, 'some downloads failed');
      const files = await listFilesRecursive(dest).catch(() => []);
      assert.deepEqual(
        files.filter((f) => f.endsWith('.tmp')),
        [],
        'no temp file left',
      );
      for (const file of files) assert.equal((await readFile(join(dest, file))).length, 200_000, `${file} is complete`);
    } finally {
      client.destroy();
      await proxy.close();
    }
  });

  it("removes temp files of dead runs at start, keeps a live writer's", async () => {
    const dir = join(temp.path, 'data', 'img');
    await mkdir(dir, { recursive: true });
    const dead = '.a.jpg.99999999.0badf00d.tmp';
    const live = `.b.jpg.${process.pid}.0badf00d.tmp`;
    await writeFile(join(dir, dead), 'half');
    await writeFile(join(dir, live), 'filling');
    await runDownloadS3(options({}));
    const names = await readdir(dir);
    assert.ok(!names.includes(dead), "the dead run's temp file is removed");
    assert.ok(names.includes(live), "a live writer's temp file is kept");
  });

  it("exits 75 while another live process holds --dest, and takes over a dead one's lock", async () => {
    const dest = join(temp.path, 'locked');
    await mkdir(dest, { recursive: true });
    const holder = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60000)'], { stdio: 'ignore' });
    try {
      await writeFile(
        lockPathFor(dest),
        JSON.stringify({ pid: holder.pid, hostname: hostname(), started: new Date().toISOString(), tool: 'download-s3' }),
      );
      await assert.rejects(runDownloadS3(options({ dest })), (error: unknown) => {
        assert.ok(error instanceof ImgpipeError);
        assert.equal(error.exitCode, EXIT_LOCKED);
        assert.match(error.message, new RegExp(`--dest .*locked by download-s3 \\(pid ${holder.pid}`));
        return true;
      });
      assert.deepEqual(await readdir(dest), [], 'nothing downloaded while locked');
    } finally {
      holder.kill();
    }
    await writeFile(
      lockPathFor(dest),
      JSON.stringify({ pid: 99999999, hostname: hostname(), started: new Date().toISOString(), tool: 'download-s3' }),
    );
    const result = await runDownloadS3(options({ dest }));
    assert.equal(result.exitCode, 0);
    assert.equal(result.ok, 3);
    await assert.rejects(readFile(lockPathFor(dest)), /ENOENT/, 'the lock is released at the end');
  });
});
