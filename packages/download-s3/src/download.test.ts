import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { format } from 'node:util';
import { Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { createRng, csvString, FailureError, InputError, readCsvRows, sha256, silentLogger } from '@imgpipe/kit';
import { createS3Client, uploadObject } from '@imgpipe/s3';
import pLimit from 'p-limit';
import { makeTempDir, startFaultyProxy, startS3Server, testAwsConfig, capture, type S3Server, type TempDir } from '@imgpipe/test-utils';
import { runDownloadS3, type DownloadS3Options } from './download.js';

const COUNT = 2_000;
const BUCKET = 'imgs';

/** Small deterministic "images" (content does not matter to the downloader, bytes do). */
function objectBytes(i: number): Buffer {
  const random = createRng(1000 + i);
  const length = 200 + Math.floor(random() * 1800);
  return Buffer.from(Array.from({ length }, () => Math.floor(random() * 256)));
}

describe('runDownloadS3 against the local S3 server', () => {
  let server: S3Server;
  let temp: TempDir;
  const keys: string[] = [];
  const hashes = new Map<string, string>();
  let csvPath: string;

  const options = (extra: Partial<DownloadS3Options>): DownloadS3Options => ({
    csv: csvPath,
    dest: join(temp.path, 'data'),
    download: true,
    client: server.client,
    concurrency: 16,
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
    for (let i = 0; i < COUNT; i++) keys.push(`set/${i % 2 ? 'dog' : 'cat'}/${String(i).padStart(5, '0')}.jpg`);
    await pLimit(16).map(keys, async (key, i) => {
      const bytes = objectBytes(i);
      hashes.set(key, sha256(bytes));
      await uploadObject(server.client, BUCKET, key, { bytes });
    });
    csvPath = join(temp.path, 'images.csv');
    const rows = keys.map((key, i) => ({ bucket: BUCKET, s3_image: key, category: i % 2 ? 'dog' : 'cat', label: i % 2, note: `n${i}` }));
    await writeFile(csvPath, await csvString(['bucket', 's3_image', 'category', 'label', 'note'], rows));
  });
  after(async () => {
    await server.close();
    await temp.remove();
  });

  it('downloads 2,000 objects byte-identical, in input order, and a second run transfers nothing', async () => {
    const out = capture();
    const events: number[] = [];
    const first = await runDownloadS3(options({ stdout: out.stream, onProgress: (e) => events.push(e.done) }));
    assert.equal(first.exitCode, 0);
    assert.equal(first.ok, COUNT);
    assert.equal(first.failed, 0);
    assert.deepEqual(
      events,
      [...events].sort((a, b) => a - b),
      'progress never decreases',
    );
    assert.equal(events.at(-1), COUNT);
    const { columns, rows } = await readCsvRows(Readable.from([out.text()]), { source: 'out' });
    assert.deepEqual(columns, ['bucket', 's3_image', 'category', 'label', 'note', 'local_image', 'local_sha256']);
    assert.deepEqual(
      rows.map((r) => r.s3_image),
      keys,
      'input order kept',
    );
    assert.equal(rows[7]!.note, 'n7', 'extra columns pass through');
    for (const row of rows) {
      assert.equal(row.local_image, join(temp.path, 'data', row.s3_image!));
      assert.equal(sha256(await readFile(row.local_image!)), hashes.get(row.s3_image!), row.s3_image);
      assert.equal(row.local_sha256, hashes.get(row.s3_image!), 'local_sha256 is the content hash');
    }
    assert.deepEqual(
      (await readdir(join(temp.path, 'data', 'set', 'cat'))).filter((f) => f.endsWith('.tmp')),
      [],
      'no temp files left',
    );

    const second = await runDownloadS3(options({}));
    assert.equal(second.exitCode, 0);
    assert.equal(second.skipped, COUNT);
    assert.equal(second.ok, 0);
    assert.equal(second.bytes, 0, 'nothing transferred');

    // A local file with the right size but the wrong content is fetched again (MD5 against the ETag).
    const damaged = join(temp.path, 'data', keys[3]!);
    const bytes = await readFile(damaged);
    bytes[0] = bytes[0]! ^ 0xff;
    await writeFile(damaged, bytes);
    const third = await runDownloadS3(options({}));
    assert.equal(third.ok, 1);
    assert.equal(third.skipped, COUNT - 1);
    assert.equal(sha256(await readFile(damaged)), hashes.get(keys[3]!));
  });

  it('refuses traversal keys, reports missing keys and bad lines, and keeps the good rows', async () => {
    await uploadObject(server.client, BUCKET, 'ok/a.jpg', { bytes: 'a' });
    await uploadObject(server.client, BUCKET, 'ok/b.jpg', { bytes: 'b' });
    const csv = join(temp.path, 'mixed.csv');
    await writeFile(
      csv,
      [
        'bucket,s3_image,category,label',
        `${BUCKET},ok/a.jpg,cat,0`,
        `${BUCKET},../escape.jpg,cat,0`,
        `${BUCKET},ok/../../../escape2.jpg,cat,0`,
        `${BUCKET},/etc/escape3.jpg,cat,0`,
        `${BUCKET},ok/missing.jpg,dog,1`,
        `${BUCKET},ok/extra.jpg,dog,1,surplus`,
        `${BUCKET},ok/b.jpg,dog,1`,
        `${BUCKET},ok/a.jpg,cat,0`,
        '',
      ].join('\n'),
    );
    const dest = join(temp.path, 'mixed', 'inside');
    const out = capture();
    const failures = join(temp.path, 'mixed-failures.csv');
    const warnings: string[] = [];
    const log = { ...silentLogger, warn: (m: string, ...a: unknown[]) => warnings.push(format(m, ...a)), error: () => undefined };
    const result = await runDownloadS3(options({ csv, dest, stdout: out.stream, failuresPath: failures, log }));
    assert.equal(result.exitCode, 2, 'only input problems: exit 2');
    assert.equal(result.ok, 2);
    assert.equal(result.skipped, 1, 'a repeated object is fetched once');
    assert.equal(result.failed, 5);
    const [kept, mark] = out.text().split(/\n(?=")/);
    assert.equal(mark, '"#imgpipe: incomplete: download-s3: 5 of 8 rows failed (over --max-failures 0)\n', 'the good rows, then the mark');
    const { rows } = await readCsvRows(Readable.from([kept!]), { source: 'out' });
    assert.deepEqual(
      rows.map((r) => r.s3_image),
      ['ok/a.jpg', 'ok/b.jpg', 'ok/a.jpg'],
    );
    assert.equal(rows[2]!.local_image, join(dest, 'ok', 'a.jpg'));
    assert.deepEqual(await readdir(join(temp.path, 'mixed')), ['inside'], 'nothing written beside --dest');
    assert.deepEqual(
      (await readdir(temp.path)).filter((f) => f.startsWith('escape')),
      [],
    );
    assert.deepEqual(await readdir(join(dest, 'ok')), ['a.jpg', 'b.jpg']);
    const listed = (await readCsvRows(Readable.from([await readFile(failures)]), { source: 'failures' })).rows;
    assert.deepEqual(
      listed.map((r) => r.line),
      ['3', '4', '5', '6', '7'],
    );
    const text = warnings.join('\n');
    assert.match(text, /line 3: key "\.\.\/escape\.jpg" has a '\.\.' segment/);
    assert.match(text, /line 5: key "\/etc\/escape3\.jpg" is an absolute path/);
    assert.match(text, /line 6: download s3:\/\/imgs\/ok\/missing\.jpg: no such key/);
    assert.match(text, /line 7: expected 4 fields, found 5/);
    // Tolerated failures: exit 0.
    const tolerant = await runDownloadS3(options({ csv, dest, maxFailures: 5 }));
    assert.equal(tolerant.exitCode, 0);
  });

  it('writes the --failures list safe for spreadsheets: a key that looks like a formula is quoted', async () => {
    const csv = join(temp.path, 'formula.csv');
    await writeFile(csv, `bucket,s3_image,category,label\n${BUCKET},"=HYPERLINK(""http://x"")",dog,1\n`);
    const failures = join(temp.path, 'formula-failures.csv');
    const result = await runDownloadS3(
      options({ csv, dest: join(temp.path, 'formula'), stdout: capture().stream, failuresPath: failures, log: silentLogger, maxFailures: 1 }),
    );
    assert.equal(result.failed, 1);
    const text = await readFile(failures, 'utf8');
    assert.ok(text.includes(`"'=HYPERLINK(""http://x"")"`), text);
  });

  it('names a missing column', async () => {
    const csv = join(temp.path, 'nocol.csv');
    await writeFile(csv, 'bucket,category,label\nimgs,cat,0\n');
    await assert.rejects(runDownloadS3(options({ csv })), (error: unknown) => {
      assert.ok(error instanceof InputError);
      assert.match(error.message, /missing column 's3_image'/);
      return true;
    });
  });

  it('reads the CSV from S3 and from stdin', async () => {
    await uploadObject(server.client, BUCKET, 'lists/small.csv', {
      bytes: `bucket,s3_image,category,label\n${BUCKET},${keys[0]},cat,0\n${BUCKET},${keys[1]},dog,1\n`,
    });
    const fromS3 = capture();
    const a = await runDownloadS3(options({ csv: `s3://${BUCKET}/lists/small.csv`, dest: join(temp.path, 's3csv'), stdout: fromS3.stream }));
    assert.equal(a.ok, 2);
    assert.match(fromS3.text(), /set\/cat\/00000\.jpg/);
    const fromStdin = capture();
    const b = await runDownloadS3(
      options({
        csv: '-',
        stdin: Readable.from([`bucket,s3_image,category,label\n${BUCKET},${keys[2]},cat,0\n`]),
        dest: join(temp.path, 'stdin'),
        stdout: fromStdin.stream,
      }),
    );
    assert.equal(b.ok, 1);
    assert.equal(sha256(await readFile(join(temp.path, 'stdin', keys[2]!))), hashes.get(keys[2]!));
  });

  it('completes every file intact through dropped connections, 503s and stalls', async () => {
    const proxy = await startFaultyProxy(server.endpoint, { dropShare: 0.05, error503Share: 0.05, stallShare: 0.01, seed: 11 });
    const client = createS3Client(testAwsConfig(proxy.endpoint), { maxAttempts: 1, concurrency: 16 });
    const subset = join(temp.path, 'subset.csv');
    const chosen = keys.slice(0, 400);
    await writeFile(
      subset,
      await csvString(
        ['bucket', 's3_image', 'category', 'label'],
        chosen.map((k) => ({ bucket: BUCKET, s3_image: k, category: 'x', label: 0 })),
      ),
    );
    try {
      const dest = join(temp.path, 'faulty');
      const result = await runDownloadS3(options({ csv: subset, dest, client, retries: 20, stallMs: 500 }));
      assert.equal(result.exitCode, 0);
      assert.equal(result.ok, chosen.length);
      for (const key of chosen)
        assert.equal(
          createHash('sha256')
            .update(await readFile(join(dest, key)))
            .digest('hex'),
          hashes.get(key),
          key,
        );
      assert.ok(proxy.counts.dropped > 0, `connections dropped: ${JSON.stringify(proxy.counts)}`);
      assert.ok(proxy.counts.errors503 > 0, `503s answered: ${JSON.stringify(proxy.counts)}`);
    } finally {
      client.destroy();
      await proxy.close();
    }
  });

  it('stops at once when the endpoint cannot be reached, naming it', async () => {
    const dead = createS3Client(testAwsConfig('http://127.0.0.1:1'), { maxAttempts: 1 });
    const started = Date.now();
    await assert.rejects(runDownloadS3(options({ client: dead, dest: join(temp.path, 'dead'), retries: 1 })), (error: unknown) => {
      assert.ok(error instanceof FailureError);
      assert.match(error.message, /cannot reach the S3 endpoint at 127\.0\.0\.1:1 \(ECONNREFUSED\); check --endpoint/);
      return true;
    });
    assert.ok(Date.now() - started < 10_000, 'does not retry 2,000 rows one by one');
    dead.destroy();
  });

  it('with downloading off, only checks that local_image files exist', async () => {
    const csv = join(temp.path, 'local.csv');
    const present = join(temp.path, 'data', keys[0]!);
    await writeFile(
      csv,
      `bucket,s3_image,category,label,local_image\n${BUCKET},${keys[0]},cat,0,${present}\n${BUCKET},x,dog,1,${join(temp.path, 'absent.jpg')}\n`,
    );
    const out = capture();
    const result = await runDownloadS3(
      options({ csv, download: false, stdout: out.stream, client: createS3Client(testAwsConfig('http://127.0.0.1:1')) }),
    );
    assert.equal(result.exitCode, 2);
    assert.equal(result.ok, 1);
    assert.match(result.failures[0]!.error ?? '', /absent\.jpg' does not exist/);
    assert.match(out.text(), new RegExp(`${keys[0]},cat,0,${present}`));
  });
});
