import assert from 'node:assert/strict';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { format } from 'node:util';
import { Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { EXIT_USAGE, readCsvRows, silentLogger, type Logger } from '@imgpipe/kit';
import { uploadObject } from '@imgpipe/s3';
import { makeTempDir, startS3Server, capture, type S3Server, type TempDir } from '@imgpipe/test-utils';
import { runDownloadS3, type DownloadS3Options } from './download.js';

const BUCKET = 'names';

/** A logger that keeps its warnings, where download-s3 names each failed row. */
function recordingLogger(): { log: Logger; warnings: string[] } {
  const warnings: string[] = [];
  const log: Logger = { ...silentLogger, warn: (message: string, ...args: unknown[]) => warnings.push(format(message, ...args)) };
  return { log, warnings };
}

describe('download-s3: keys that are hard to place on a file system', () => {
  let server: S3Server;
  let temp: TempDir;
  let n = 0;
  /** Run on a CSV of these keys into a fresh --dest. */
  async function download(keys: string[], header = 'bucket,s3_image,category,label') {
    n += 1;
    const csv = join(temp.path, `images-${n}.csv`);
    await writeFile(csv, `${[header, ...keys.map((key) => `${BUCKET},${key},cat,0${header.endsWith(',label') ? '' : ',1'}`)].join('\n')}\n`);
    const out = capture();
    const { log, warnings } = recordingLogger();
    const dest = join(temp.path, `data-${n}`);
    const options: DownloadS3Options = {
      csv,
      dest,
      download: true,
      client: server.client,
      stdin: Readable.from([]),
      stdout: out.stream,
      cwd: temp.path,
      log,
    };
    const summary = await runDownloadS3(options);
    return { summary, dest, warnings, out: out.text() };
  }

  before(async () => {
    server = await startS3Server();
    temp = await makeTempDir();
    await server.createBucket(BUCKET);
    for (const key of [`${'l'.repeat(250)}.jpg`, `${'x'.repeat(300)}.jpg`, 'nested/a.jpg', 'nested/a.jpg/b.jpg', 'ok.jpg']) {
      await uploadObject(server.client, BUCKET, key, { bytes: `bytes of ${key}` });
    }
  });
  after(async () => {
    await server.close();
    await temp.remove();
  });

  it('downloads a key whose name is as long as a file name may be (its temp name is cut to fit)', async () => {
    const key = `${'l'.repeat(250)}.jpg`;
    const { summary, dest } = await download([key]);
    assert.equal(summary.exitCode, 0, summary.failures[0]?.error);
    assert.equal(await readFile(join(dest, key), 'utf8'), `bytes of ${key}`);
    assert.deepEqual(await readdir(dest), [key], 'no temp file left beside it');
  });

  it('refuses a key with a name longer than a file system holds: exit 2 naming the key, the other rows downloaded', async () => {
    const key = `${'x'.repeat(300)}.jpg`;
    const { summary, dest, warnings } = await download([key, 'ok.jpg']);
    assert.equal(summary.exitCode, EXIT_USAGE);
    assert.equal(summary.ok, 1);
    assert.match(warnings.join('\n'), new RegExp(`line 2: key "${key}" has a name of 304 bytes, more than the 255`));
    assert.deepEqual(await readdir(dest), ['ok.jpg']);
  });

  it('refuses, in either order, an object whose file is where another needs a directory: exit 2 naming both', async () => {
    for (const keys of [
      ['nested/a.jpg', 'nested/a.jpg/b.jpg'],
      ['nested/a.jpg/b.jpg', 'nested/a.jpg'],
    ]) {
      const { summary, warnings } = await download([...keys, 'ok.jpg']);
      assert.equal(summary.exitCode, EXIT_USAGE, warnings.join('\n'));
      assert.equal(summary.ok, 2, 'the first of the two and the unrelated row are downloaded');
      assert.match(warnings.join('\n'), /line 3: s3:\/\/names\/nested\/a\.jpg.*s3:\/\/names\/nested\/a\.jpg/);
      assert.match(warnings.join('\n'), /as a directory/);
    }
  });

  it('refuses a bucket column that is no bucket name (path-style, "..", "b/../x" or "b?x=1" would change the request path)', async () => {
    n += 1;
    const csv = join(temp.path, `buckets-${n}.csv`);
    await writeFile(csv, `bucket,s3_image,category,label\n..,ok.jpg,cat,0\nnames/../x,ok.jpg,cat,0\n"names?x=1",b.jpg,cat,0\nnames,ok.jpg,cat,0\n`);
    const { log, warnings } = recordingLogger();
    const dest = join(temp.path, `data-${n}`);
    const summary = await runDownloadS3({
      csv,
      dest,
      download: true,
      client: server.client,
      stdin: Readable.from([]),
      stdout: capture().stream,
      cwd: temp.path,
      log,
    });
    assert.equal(summary.exitCode, EXIT_USAGE);
    assert.equal(summary.ok, 1);
    for (const [line, bucket] of [
      [2, '..'],
      [3, 'names/../x'],
      [4, 'names?x=1'],
    ] as const) {
      assert.match(warnings.join('\n'), new RegExp(`line ${line}: bucket ${JSON.stringify(bucket).replace(/[.?]/g, '\\$&')} is not a bucket name`));
    }
  });

  it('refuses a CSV whose header names a column twice (rows are keyed by name), before downloading', async () => {
    await assert.rejects(download(['ok.jpg'], 'bucket,s3_image,category,label,label'), (error: Error) => {
      assert.match(error.message, /images-\d+\.csv: column 'label' appears twice in the header \(columns 4 and 5\)/);
      return true;
    });
    const { out } = await download(['ok.jpg']);
    const { rows } = await readCsvRows(Readable.from([out]), { source: 'out' });
    assert.equal(rows[0]!.label, '0');
  });
});
