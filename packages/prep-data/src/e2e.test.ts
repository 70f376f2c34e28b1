import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { open, readFile, symlink, writeFile } from 'node:fs/promises';
import { constants, createReadStream } from 'node:fs';
import { basename, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, test } from 'node:test';
import { csvString, openDataset, readCsvRows } from '@imgpipe/kit';
import { generateImageSet, makeTempDir, TINY_IMAGE_SIZES, type ImageSet, type TempDir } from '@imgpipe/test-utils';
import { execa } from 'execa';

// The real bin (bin/prep-data.js -> dist/main.js): run `npx tsc -b` before the tests.
const BIN = fileURLToPath(new URL('../bin/prep-data.js', import.meta.url));

let temp: TempDir;
let set: ImageSet;
before(async () => {
  temp = await makeTempDir('imgpipe-prep-e2e-');
  set = await generateImageSet({ dir: join(temp.path, 'images'), count: 30, seed: 11, bad: true, sizes: TINY_IMAGE_SIZES });
});
after(() => temp.remove());

test('prep-data reads the CSV on stdin, writes the dataset and prints one pointer line; a rerun does nothing', async () => {
  const csv = await readFile(set.csvPath);
  const run = (...extra: string[]) =>
    execa('node', [BIN, '--out', 'prep', '--img-dimensions', '16', '--split-seed', '5', ...extra], { cwd: temp.path, input: csv, reject: false });
  const first = await run();
  assert.equal(first.exitCode, 0, first.stderr);
  assert.deepEqual(JSON.parse(first.stdout), { kind: 'dataset', path: 'prep', manifest: 'prep/manifest.json' });
  assert.match(first.stderr, /30 images -> train 22, val 4, test 4 \(cat 15, dog 15\)/);
  assert.match(first.stderr, /4 rejected/);
  const dataset = await openDataset(join(temp.path, 'prep'));
  assert.equal(dataset.manifest.splits.train.count + dataset.manifest.splits.val.count + dataset.manifest.splits.test.count, 30);
  assert.equal(dataset.manifest.rejected, 4);

  const second = await run('--csv', '-');
  assert.equal(second.exitCode, 0, second.stderr);
  assert.equal(second.stdout, first.stdout);
  assert.match(second.stderr, /up to date/);
  assert.equal((await openDataset(join(temp.path, 'prep'))).manifest.created, dataset.manifest.created);
});

test('a FIFO or a link to /dev/zero in local_image is rejected as not a regular file; prep-data neither hangs nor reads for ever', async () => {
  const fifo = join(temp.path, 'fifo.png');
  execFileSync('mkfifo', [fifo]);
  await symlink('/dev/zero', join(temp.path, 'zero.png'));
  const good = set.images.slice(0, 8);
  const rows = [
    ...good,
    { ...good[0]!, s3_image: 'special/fifo.png', local_image: fifo },
    { ...good[1]!, s3_image: 'special/zero.png', local_image: join(temp.path, 'zero.png') },
  ];
  await writeFile(
    join(temp.path, 'special.csv'),
    await csvString(
      ['bucket', 's3_image', 'category', 'label', 'local_image'],
      rows.map((row) => ({ ...row })),
    ),
  );
  const run = execa('node', [BIN, '--csv', 'special.csv', '--out', 'special', '--img-dimensions', '16'], {
    cwd: temp.path,
    reject: false,
    timeout: 60_000,
  });
  const result = await run.finally(async () => {
    // Should the bin be stuck opening the FIFO, a writer releases it so the test process can end.
    const writer = await open(fifo, constants.O_WRONLY | constants.O_NONBLOCK).catch(() => undefined);
    await writer?.close();
  });
  assert.equal(result.timedOut, false, 'prep-data finished');
  assert.equal(result.exitCode, 0, result.stderr);
  const { rows: rejected } = await readCsvRows(createReadStream(join(temp.path, 'special', 'rejected.csv')), { source: 'rejected.csv' });
  const reasons = Object.fromEntries(rejected.map((row) => [basename(row.local_image ?? ''), `${row.reason}: ${row.detail}`]));
  assert.match(reasons['fifo.png'] ?? '', /not-an-image: not a regular file/);
  assert.match(reasons['zero.png'] ?? '', /not-an-image: not a regular file/);
});

test('prep-data exits 2 with one clear line for fractions that do not add up to 1', async () => {
  const result = await execa('node', [BIN, '--csv', set.csvPath, '--out', 'bad', '--train-pct', '0.9'], { cwd: temp.path, reject: false });
  assert.equal(result.exitCode, 2);
  assert.equal(result.stdout, '');
  assert.match(result.stderr, /^prep-data: error: --train-pct 0.9 \+ --val-pct 0.15 \+ --test-pct 0.15 = 1.2; they must add up to 1/);
});
