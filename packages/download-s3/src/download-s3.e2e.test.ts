import assert from 'node:assert/strict';
import { hostname } from 'node:os';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { execa } from 'execa';
import { lockPathFor, readCsvRows, sha256 } from '@imgpipe/kit';
import { uploadObject } from '@imgpipe/s3';
import { makeTempDir, startFaultyProxy, startS3Server, type S3Server, type TempDir } from '@imgpipe/test-utils';

// The real bin, which imports dist/: run `npx tsc -b` first.
const BIN = fileURLToPath(new URL('../bin/download-s3.js', import.meta.url));

describe('download-s3 (the bin, end to end)', () => {
  let server: S3Server;
  let temp: TempDir;
  const run = (args: string[], input?: string, env: Record<string, string> = {}) =>
    execa('node', [BIN, ...args], {
      cwd: temp.path,
      env: { ...server.env, NODE_NO_WARNINGS: '1', ...env },
      reject: false,
      ...(input === undefined ? {} : { input }),
    });

  before(async () => {
    server = await startS3Server();
    temp = await makeTempDir();
    await server.createBucket('e2e');
    const lines = ['bucket,s3_image,category,label'];
    for (let i = 0; i < 20; i++) {
      await uploadObject(server.client, 'e2e', `img/${i}.jpg`, { bytes: `image ${i} `.repeat(i + 1) });
      lines.push(`e2e,img/${i}.jpg,${i % 2 ? 'dog' : 'cat'},${i % 2}`);
    }
    await uploadObject(server.client, 'e2e', 'images.csv', { bytes: `${lines.join('\n')}\n` });
    await uploadObject(server.client, 'e2e', 'broken.csv', { bytes: `${lines.slice(0, 3).join('\n')}\ne2e,img/none.jpg,cat,0\n` });
  });
  after(async () => {
    await server.close();
    await temp.remove();
  });

  it('answers --help and rejects a bad flag value with exit 2', async () => {
    const help = await run(['--help']);
    assert.equal(help.exitCode, 0);
    assert.match(help.stdout, /--concurrency/);
    assert.match(help.stdout, /--no-download-data|--download-data/);
    const bad = await run(['--csv', 'x.csv', '--concurrency', '0']);
    assert.equal(bad.exitCode, 2);
    assert.match(bad.stderr, /expected --concurrency to be an integer >= 1/);
  });

  it('--shard I/N downloads and prints only rows I, I+N, ...; the shards together are the whole CSV', async () => {
    const rows = new Map<string, string>();
    for (let i = 0; i < 3; i++) {
      const result = await run(['--csv', 's3://e2e/images.csv', '--dest', `sharded-${i}`, '--shard', `${i}/3`]);
      assert.equal(result.exitCode, 0, result.stderr);
      const lines = result.stdout.trim().split('\n');
      assert.equal(lines[0], 'bucket,s3_image,category,label,local_image,local_sha256');
      const expected = Array.from({ length: 20 }, (_, n) => n).filter((n) => n % 3 === i);
      assert.deepEqual(
        lines.slice(1).map((l) => l.split(',')[1]),
        expected.map((n) => `img/${n}.jpg`),
      );
      assert.match(result.stderr, new RegExp(`${expected.length} ok, 0 skipped`));
      for (const n of expected)
        assert.equal(sha256(await readFile(join(temp.path, `sharded-${i}`, 'img', `${n}.jpg`))), sha256(`image ${n} `.repeat(n + 1)));
      await assert.rejects(readFile(join(temp.path, `sharded-${i}`, 'img', `${(i + 1) % 3}.jpg`)), "another shard's image is not downloaded");
      for (const line of lines.slice(1)) rows.set(line.split(',')[1]!, line);
    }
    assert.equal(rows.size, 20);
    for (const bad of ['3/3', '1', '-1/2', 'a/b', '0/0']) {
      const result = await run(['--csv', 's3://e2e/images.csv', '--dest', 'data', `--shard=${bad}`]);
      assert.equal(result.exitCode, 2, bad);
      assert.match(result.stderr, /expected --shard to be I\/N/);
    }
  });

  it('downloads a CSV on S3 into --dest and prints the CSV with local_image', async () => {
    const result = await run(['--csv', 's3://e2e/images.csv', '--dest', 'data', '--concurrency', '4']);
    assert.equal(result.exitCode, 0, result.stderr);
    const lines = result.stdout.trim().split('\n');
    assert.equal(lines[0], 'bucket,s3_image,category,label,local_image,local_sha256');
    assert.equal(lines.length, 21);
    assert.equal(lines[6], `e2e,img/5.jpg,dog,1,${join('data', 'img', '5.jpg')},${sha256('image 5 '.repeat(6))}`);
    assert.equal(sha256(await readFile(join(temp.path, 'data', 'img', '5.jpg'))), sha256('image 5 '.repeat(6)));
    assert.match(result.stderr, /20 ok, 0 skipped/);
    const again = await run(['--csv', 's3://e2e/images.csv', '--dest', 'data']);
    assert.equal(again.exitCode, 0);
    assert.match(again.stderr, /0 ok, 20 skipped/);
    const toFile = await run(['--csv', 's3://e2e/images.csv', '--dest', 'data', '--out', 'local.csv']);
    assert.equal(toFile.exitCode, 0);
    assert.equal(toFile.stdout, '', '--out: nothing on stdout');
    assert.equal((await readFile(join(temp.path, 'local.csv'), 'utf8')).trim(), result.stdout.trim());
  });

  it('four shards at once share one --dest, as docs/scale-out.md and the Argo workflow run them (a lock per shard)', async () => {
    // Each request waits 150 ms at the proxy, so the four processes overlap: before, three exited 75 on the --dest lock.
    const proxy = await startFaultyProxy(server.endpoint, { latencyMs: 150 });
    try {
      const shard = (i: number) =>
        run(['--csv', 's3://e2e/images.csv', '--dest', 'shared/', '--shard', `${i}/4`, '--out', `part-${i}.csv`, '--concurrency', '1'], undefined, {
          S3_ENDPOINT: proxy.endpoint,
        });
      const results = await Promise.all([0, 1, 2, 3].map(shard));
      for (const result of results) assert.equal(result.exitCode, 0, result.stderr);
      const rows = [];
      for (let i = 0; i < 4; i++)
        rows.push(...(await readCsvRows(Readable.from([await readFile(join(temp.path, `part-${i}.csv`))]), { source: `part-${i}.csv` })).rows);
      assert.deepEqual(
        rows.map((row) => row.s3_image).sort(),
        Array.from({ length: 20 }, (_, n) => `img/${n}.jpg`).sort(),
        'the parts are the whole CSV',
      );
      for (const row of rows) assert.equal(sha256(await readFile(join(temp.path, row.local_image!))), row.local_sha256);
      for (let n = 0; n < 20; n++)
        assert.equal(sha256(await readFile(join(temp.path, 'shared', 'img', `${n}.jpg`))), sha256(`image ${n} `.repeat(n + 1)));
      assert.deepEqual(
        (await readdir(temp.path)).filter((name) => name.endsWith('.lock')),
        [],
        'every shard released its lock',
      );

      // A second process for a shard that is being downloaded exits 75; another shard goes ahead beside it.
      await writeFile(
        lockPathFor(join(temp.path, 'shared.shard-1-of-4')),
        JSON.stringify({ pid: process.pid, hostname: hostname(), started: new Date().toISOString(), tool: 'download-s3' }),
      );
      const [same, other] = await Promise.all([shard(1), shard(2)]);
      assert.equal(same.exitCode, 75, same.stderr);
      assert.match(same.stderr, /--dest shared\/ --shard 1\/4: the download destination's shard 1\/4 is locked by download-s3 \(pid \d+/);
      assert.equal(other.exitCode, 0, other.stderr);
      assert.match(other.stderr, /0 ok, 5 skipped/);
    } finally {
      await proxy.close();
    }
  });

  it('exits non-zero naming a missing key, writing the good rows and then a line that marks the CSV incomplete', async () => {
    const piped = await run(['--dest', 'data3'], 'bucket,s3_image,category,label\ne2e,img/1.jpg,dog,1\ne2e,img/gone.jpg,cat,0\n');
    assert.equal(piped.exitCode, 2, 'CSV piped on stdin, one key missing');
    assert.match(piped.stderr, /stdin: line 3: download s3:\/\/e2e\/img\/gone\.jpg: no such key/);
    assert.equal(
      piped.stdout,
      `bucket,s3_image,category,label,local_image,local_sha256\ne2e,img/1.jpg,dog,1,${join('data3', 'img', '1.jpg')},${sha256('image 1 '.repeat(2))}\n` +
        '"#imgpipe: incomplete: download-s3: 1 of 2 rows failed (over --max-failures 0)',
      'execa strips the final newline',
    );
    // The next stage of a pipe sees the mark, not a complete table.
    await assert.rejects(
      readCsvRows(Readable.from([piped.stdout]), { source: 'stdin' }),
      /stdin: the CSV is incomplete: download-s3: 1 of 2 rows failed/,
    );
    const viaS3 = await run(['--csv', 's3://e2e/broken.csv', '--dest', 'data2', '--failures', 'failed.csv']);
    assert.equal(viaS3.exitCode, 2);
    assert.match(viaS3.stderr, /line 4: download s3:\/\/e2e\/img\/none\.jpg: no such key/);
    assert.equal(viaS3.stdout.trim().split('\n').length, 4, 'header, the two good rows and the mark');
    const tolerated = await run(['--csv', 's3://e2e/broken.csv', '--dest', 'data2', '--max-failures', '1']);
    assert.equal(tolerated.exitCode, 0);
    assert.equal(
      (await readCsvRows(Readable.from([tolerated.stdout]), { source: 'stdout' })).rows.length,
      2,
      'tolerated failures: a complete CSV of the good rows',
    );
    assert.match(await readFile(join(temp.path, 'failed.csv'), 'utf8'), /^line,bucket,s3_image,local_image,error\n4,e2e,img\/none\.jpg,/);
  });
});
