// A large images CSV is streamed, not read whole. The real bin (run `npx tsc -b` first) checks a generated ~70 MB
// CSV (90,000 rows) from the local S3 server with --no-download-data, and its peak RSS, read from
// /proc/<pid>/status while it runs, stays bounded: before, the CSV was read into one buffer and every row was kept
// (606 MB peak for a 75 MB CSV of 160,000 rows). And progress starts with the first rows, not after the whole CSV.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { silentLogger, type ProgressEvent } from '@imgpipe/kit';
import { uploadObject } from '@imgpipe/s3';
import { capture, makeTempDir, startS3Server, type S3Server, type TempDir } from '@imgpipe/test-utils';
import { runDownloadS3 } from './download.js';

const BIN = fileURLToPath(new URL('../bin/download-s3.js', import.meta.url));
const ROWS = 90_000;
/**
 * Peak RSS allowed, in MB: node, the AWS SDK and the rows in flight, never the whole CSV. Measured 136-189 MB on
 * Node 22 and 259 MB on Node 24 (a larger V8 heap before it collects); the old code took 566 MB for this CSV.
 */
const PEAK_RSS_MB = 380;

describe('download-s3: a large CSV is streamed', () => {
  let server: S3Server;
  let temp: TempDir;
  let csvBytes = 0;

  before(async () => {
    server = await startS3Server();
    temp = await makeTempDir();
    await server.createBucket('big');
    const image = join(temp.path, 'image.jpg');
    await writeFile(image, 'one small file every row names');
    // An extra column passes through untouched: 750 characters of caption per row, as users' CSVs carry.
    const caption = 'a photograph of a pet on a sofa, taken indoors in the evening light; '.repeat(11).slice(0, 750);
    const lines = ['bucket,s3_image,category,label,local_image,caption'];
    for (let i = 0; i < ROWS; i++) lines.push(`big,pets/${i}.jpg,${i % 2 ? 'dog' : 'cat'},${i % 2},${image},"${caption} #${i}"`);
    const text = `${lines.join('\n')}\n`;
    csvBytes = Buffer.byteLength(text);
    await uploadObject(server.client, 'big', 'images.csv', { bytes: text });
  });
  after(async () => {
    await server.close();
    await temp.remove();
  });

  it(`streams a ${ROWS}-row CSV from S3 with bounded memory`, async () => {
    assert.ok(csvBytes > 60e6, `the CSV is ${csvBytes} bytes`);
    const child = spawn(process.execPath, [BIN, '--csv', 's3://big/images.csv', '--no-download-data', '--out', 'checked.csv'], {
      cwd: temp.path,
      env: { ...process.env, ...server.env, NODE_NO_WARNINGS: '1' },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    const started = Date.now();
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    let peakKb = 0;
    const poll = setInterval(() => {
      readFile(`/proc/${child.pid}/status`, 'utf8')
        .then((status) => (peakKb = Math.max(peakKb, Number(/VmHWM:\s+(\d+)/.exec(status)?.[1] ?? 0))))
        .catch(() => undefined);
    }, 20);
    const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
    clearInterval(poll);
    const seconds = (Date.now() - started) / 1000;
    assert.equal(code, 0, stderr);
    assert.match(stderr, new RegExp(`checked: ${ROWS} ok`));
    const out = await readFile(join(temp.path, 'checked.csv'), 'utf8');
    assert.equal(out.split('\n').length - 2, ROWS, 'every row written');
    const peakMb = peakKb / 1024;
    process.stderr.write(`# ${(csvBytes / 1e6).toFixed(1)} MB CSV, ${ROWS} rows: peak RSS ${peakMb.toFixed(0)} MB, ${seconds.toFixed(1)} s\n`);
    assert.ok(peakMb > 20, `the RSS was read (${peakMb} MB)`);
    assert.ok(peakMb < PEAK_RSS_MB, `peak RSS ${peakMb.toFixed(0)} MB for a ${(csvBytes / 1e6).toFixed(0)} MB CSV (bound ${PEAK_RSS_MB} MB)`);
  });

  it('reports progress on the first rows while the rest of the CSV has not arrived yet', async () => {
    const image = join(temp.path, 'image.jpg');
    const input = new PassThrough();
    input.write(`bucket,s3_image,category,label,local_image\n${Array.from({ length: 10 }, (_, i) => `big,p/${i}.jpg,cat,0,${image}`).join('\n')}\n`);
    const events: ProgressEvent[] = [];
    let firstProgress: () => void = () => undefined;
    const progressed = new Promise<void>((resolve) => (firstProgress = resolve));
    const run = runDownloadS3({
      csv: '-',
      dest: join(temp.path, 'unused'),
      download: false,
      stdin: input,
      stdout: capture().stream,
      cwd: temp.path,
      log: silentLogger,
      onProgress: (event) => {
        events.push(event);
        if (event.status === 'progress') firstProgress();
      },
    });
    // The input is still open: before, nothing was checked (or counted) until it ended.
    try {
      await Promise.race([
        progressed,
        run.then(() => assert.fail('finished before the input ended')),
        sleep(10_000, undefined, { ref: false }).then(() => assert.fail('no progress in 10 s while the input was open')),
      ]);
    } finally {
      input.end(`big,p/10.jpg,dog,1,${image}\n`);
    }
    assert.ok(events.some((event) => event.status === 'progress' && event.done >= 1));
    const summary = await run;
    assert.equal(summary.ok, 11);
    assert.equal(events.at(-1)?.status, 'done');
    assert.equal(events.at(-1)?.done, 11);
  });
});
