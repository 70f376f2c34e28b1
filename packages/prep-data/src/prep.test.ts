import assert from 'node:assert/strict';
import { readdir, readFile, stat, writeFile, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { after, before, test } from 'node:test';
import { csvString, InputError, openDataset, runCli, sha256, UsageError, type ProgressEvent, SPLIT_NAMES, type SplitFractions } from '@imgpipe/kit';
import { decodeToTensor } from '@imgpipe/images';
import { splitCounts } from './split.js';
import { generateImageSet, makeTempDir, TINY_IMAGE_SIZES, type ImageSet, type ImageSetRow, type TempDir } from '@imgpipe/test-utils';
import { prepDataCli } from './cli.js';
import { runPrepData, type PrepDataOptions } from './prep.js';

let temp: TempDir;
let set: ImageSet;
const SIZE = 16;
const COLUMNS = ['bucket', 's3_image', 'category', 'label', 'local_image'];

before(async () => {
  temp = await makeTempDir('imgpipe-prep-');
  set = await generateImageSet({ dir: join(temp.path, 'images'), count: 47, seed: 3, bad: true, sizes: TINY_IMAGE_SIZES });
});
after(() => temp.remove());

async function csvOf(rows: readonly (ImageSetRow | Record<string, unknown>)[], columns = COLUMNS): Promise<Buffer> {
  return Buffer.from(await csvString(columns, rows as Record<string, unknown>[]));
}

let outs = 0;
function prep(csv: Buffer, overrides: Partial<PrepDataOptions> = {}) {
  return runPrepData({
    csv,
    csvSource: 'test.csv',
    out: join(temp.path, `out-${outs++}`),
    size: SIZE,
    fractions: { train: 0.7, val: 0.15, test: 0.15 },
    seed: 42,
    quiet: true,
    concurrency: 2,
    ...overrides,
  });
}

async function allSources(dir: string): Promise<Map<string, string>> {
  const dataset = await openDataset(dir);
  const where = new Map<string, string>();
  for (const split of SPLIT_NAMES) {
    for (const row of await dataset.rows(split)) {
      assert.ok(!where.has(row.source), `${row.source} is in ${where.get(row.source)} and ${split}`);
      where.set(row.source, split);
    }
  }
  return where;
}

test('exact per-class counts for several set sizes and fractions, and no image in two splits', async () => {
  const fractionsList: SplitFractions[] = [
    { train: 0.7, val: 0.15, test: 0.15 },
    { train: 0.5, val: 0.25, test: 0.25 },
    { train: 1, val: 0, test: 0 },
  ];
  for (const count of [5, 21, 47]) {
    const rows = set.images.slice(0, count);
    for (const fractions of fractionsList) {
      const result = await prep(await csvOf(rows), { fractions });
      const perClass = [0, 1].map((label) => rows.filter((row) => row.label === label).length);
      for (const split of SPLIT_NAMES) {
        const expected = perClass.map((n) => splitCounts(n, fractions)[split]);
        assert.deepEqual(result.manifest.splits[split].per_class, expected, `${count} ${split} ${JSON.stringify(fractions)}`);
        assert.equal(result.manifest.splits[split].count, expected[0]! + expected[1]!);
      }
      const where = await allSources(result.pointer.path as string);
      assert.equal(where.size, count);
      assert.deepEqual([...where.keys()].sort(), rows.map((row) => `s3://${row.bucket}/${row.s3_image}`).sort());
    }
  }
});

test('the dataset reads back: pixels in row order equal a direct decode; rows carry labels and pass-through columns', async () => {
  const rows = set.images.slice(0, 12).map((row, index) => ({ ...row, note: `n${index}` }));
  const reported: ProgressEvent[] = [];
  const csv = await csvOf(rows, [...COLUMNS, 'note']);
  const result = await prep(csv, { fit: 'cover', onProgress: (event) => reported.push(event) });
  // A fresh build reads each file once: hashed as it is decoded, no pass of its own.
  assert.deepEqual(
    reported.filter((event) => event.label === 'prep-data: hash'),
    [],
  );
  // A rerun first hashes every file to see whether anything changed, with progress of its own (a large CSV spends
  // minutes there).
  const rerun: ProgressEvent[] = [];
  const again = await prep(csv, { fit: 'cover', out: result.pointer.path as string, onProgress: (event) => rerun.push(event) });
  assert.equal(again.upToDate, true);
  const hashed = rerun.filter((event) => event.label === 'prep-data: hash');
  assert.deepEqual([hashed[0]!.status, hashed.at(-1)!.status, hashed.at(-1)!.done, hashed.at(-1)!.total], ['start', 'done', 12, 12]);
  const events = reported.filter((event) => event.label === 'prep-data');
  assert.equal(events[0]!.status, 'start');
  assert.equal(events.at(-1)!.status, 'done');
  assert.equal(events.at(-1)!.done, 12);
  events.forEach((event, index) => {
    assert.ok(index === 0 || event.done >= events[index - 1]!.done, 'progress never decreases');
  });
  const dataset = await openDataset(result.pointer.path as string);
  assert.deepEqual(dataset.manifest.classes, ['cat', 'dog']);
  assert.equal(dataset.manifest.fit, 'cover');
  assert.equal(dataset.manifestSha256, sha256(await readFile(result.pointer.manifest as string)));
  const train = await dataset.rows('train');
  assert.deepEqual(Object.keys(train[0]!.fields), [
    'index',
    'source',
    'label',
    'category',
    'content_sha256',
    'bucket',
    's3_image',
    'local_image',
    'note',
  ]);
  for (const row of train)
    assert.equal(row.fields.content_sha256, sha256(await readFile(row.fields.local_image!)), `${row.source}: content_sha256 is the file's`);
  assert.deepEqual(
    [...(await dataset.labels('train'))],
    train.map((row) => row.label),
  );
  const imageBytes = SIZE * SIZE * 3;
  const all = await dataset.readPixels('train', 0, train.length);
  assert.equal(all.length, train.length * imageBytes);
  for (const [index, row] of train.entries()) {
    const direct = await decodeToTensor(row.fields.local_image!, { size: SIZE, fit: 'cover' });
    assert.deepEqual(all.subarray(index * imageBytes, (index + 1) * imageBytes), direct, row.source);
    const source = rows.find((r) => `s3://${r.bucket}/${r.s3_image}` === row.source)!;
    assert.equal(row.label, source.label);
    assert.equal(row.fields.note, source.note);
    assert.equal(row.index, index);
  }
  assert.deepEqual(await dataset.readPixels('train', 2, 1), all.subarray(2 * imageBytes, 3 * imageBytes));
  await assert.rejects(dataset.readPixels('train', train.length, 1), RangeError);
  const manifestText = await readFile(result.pointer.manifest as string, 'utf8');
  assert.equal(JSON.parse(manifestText).splits.train.pixels.sha256, sha256(await readFile(dataset.pixelsPath('train'))));
});

test('byte-identical output for the same input and seed, whatever the concurrency; another seed differs', async () => {
  const csv = await csvOf(set.rows);
  const a = await prep(csv, { concurrency: 1 });
  const b = await prep(csv, { concurrency: 3 });
  const c = await prep(csv, { seed: 43 });
  const files = (await readdir(a.pointer.path as string)).sort();
  assert.deepEqual(files, ['manifest.json', 'rejected.csv', 'test.csv', 'test.u8', 'train.csv', 'train.u8', 'val.csv', 'val.u8']);
  for (const file of files.filter((f) => f !== 'manifest.json')) {
    const [x, y] = await Promise.all([readFile(join(a.pointer.path as string, file)), readFile(join(b.pointer.path as string, file))]);
    assert.ok(x.equals(y), file);
  }
  const strip = (m: object) => ({ ...m, created: undefined });
  assert.deepEqual(strip(a.manifest), strip(b.manifest));
  assert.notEqual(a.manifest.splits.train.rows.sha256, c.manifest.splits.train.rows.sha256);
});

test('--split-by hash keeps every image in its split when rows are appended', async () => {
  const first = await prep(await csvOf(set.images.slice(0, 30)), { splitBy: 'hash' });
  const more = await prep(await csvOf(set.images), { splitBy: 'hash' });
  assert.equal(first.manifest.split.method, 'hash');
  const before = await allSources(first.pointer.path as string);
  const afterAppend = await allSources(more.pointer.path as string);
  assert.equal(afterAppend.size, 47);
  for (const [source, split] of before) assert.equal(afterAppend.get(source), split, source);
  const withBad = await prep(await csvOf(set.rows), { splitBy: 'hash' });
  assert.equal(withBad.rejected.length, 4);
  assert.deepEqual(await allSources(withBad.pointer.path as string), afterAppend);
});

test('every rejection reason is listed in rejected.csv and nothing else is lost', async () => {
  const dir = join(temp.path, 'extra');
  await mkdir(dir, { recursive: true });
  const big = (await generateImageSet({ dir, count: 1, seed: 1, sizes: [[400, 300]], classes: ['big'] })).images[0]!.local_image;
  const extra = [
    { bucket: 'b', s3_image: 'x/big.0.jpg', category: 'cat', label: 0, local_image: big },
    { bucket: 'b', s3_image: 'x/gone.jpg', category: 'dog', label: 1, local_image: join(dir, 'gone.jpg') },
    { bucket: 'b', s3_image: 'x/none.jpg', category: 'dog', label: 1, local_image: '' },
    { ...set.images[0]! },
  ];
  const csv = await csvOf([...set.rows, ...extra]);
  const result = await prep(csv, { maxPixels: 100_000 });
  const reasons = Object.fromEntries(result.rejected.map((row) => [row.source.split('/').at(-1), row.reason]));
  assert.deepEqual(reasons, {
    'truncated.jpg': 'unreadable',
    'notes.jpg': 'not-an-image',
    'empty.jpg': 'empty',
    'bomb.png': 'decompression-bomb',
    'big.0.jpg': 'too-large',
    'gone.jpg': 'missing',
    'none.jpg': 'missing',
    'cat.0.jpg': 'duplicate',
  });
  const text = await readFile(join(result.pointer.path as string, 'rejected.csv'), 'utf8');
  assert.equal(text.trim().split('\n').length, 1 + 8);
  assert.match(text, /^line,source,local_image,label,category,reason,detail\n/);
  assert.match(text, /,too-large,.*--max-pixels/);
  assert.equal(result.manifest.rejected, 8);
  const kept = SPLIT_NAMES.reduce((sum, split) => sum + result.manifest.splits[split].count, 0);
  assert.equal(kept, 47);
  // Images rejected while decoding make the splits be redrawn over the usable ones: still exact, pixels still in row order.
  for (const split of SPLIT_NAMES) {
    const expected = [0, 1].map(
      (label) => splitCounts(set.images.filter((row) => row.label === label).length, result.manifest.split.fractions)[split],
    );
    assert.deepEqual(result.manifest.splits[split].per_class, expected, split);
  }
  const dataset = await openDataset(result.pointer.path as string);
  for (const split of SPLIT_NAMES) {
    const rows = await dataset.rows(split);
    for (const index of [0, rows.length - 1]) {
      const direct = await decodeToTensor(rows[index]!.fields.local_image!, { size: SIZE, fit: 'fill' });
      assert.deepEqual(await dataset.readPixels(split, index, 1), direct, `${split} ${index}`);
    }
  }
  assert.deepEqual(
    (await readdir(result.pointer.path as string)).filter((name) => name.startsWith('.')),
    [],
    'no staged files left',
  );
  // --max-rejected: 8 rejected is over 7 (exit 2 and no dataset), within 8.
  const out = join(temp.path, 'max-rejected');
  await assert.rejects(
    prep(csv, { maxPixels: 100_000, maxRejected: 7, out }),
    (error: unknown) => error instanceof InputError && /over --max-rejected 7/.test(error.message),
  );
  await assert.rejects(stat(out), { code: 'ENOENT' });
  assert.deepEqual(
    (await readdir(temp.path)).filter((name) => name.includes('.tmp')),
    [],
    'no temp directory left',
  );
  await prep(csv, { maxPixels: 100_000, maxRejected: 8 });
  await assert.rejects(
    prep(await csvOf(set.bad)),
    (error: unknown) => error instanceof InputError && /none of the 4 images is usable/.test(error.message),
  );
});

test('a label with two names, a gap in the labels, or a non-integer label is an input error naming the lines', async () => {
  const rows = set.images.slice(0, 4).map((row) => ({ ...row }));
  rows[3]!.category = 'puppy';
  await assert.rejects(
    prep(await csvOf(rows)),
    (error: unknown) => error instanceof InputError && /label 1 has 2 names: 'dog' \(line 3\) and 'puppy' \(line 5\)/.test(error.message),
  );
  const gap = set.images.slice(0, 4).map((row) => ({ ...row, label: row.label * 2 }));
  await assert.rejects(
    prep(await csvOf(gap)),
    (error: unknown) => error instanceof InputError && /no row has label 1/.test(error.message) && /lines 3, 5/.test(error.message),
  );
  const bad = set.images.slice(0, 3).map((row, index) => ({ ...row, label: index === 1 ? 'one' : row.label }));
  await assert.rejects(
    prep(await csvOf(bad)),
    (error: unknown) => error instanceof InputError && /non-negative integer on line 3/.test(error.message),
  );
  await assert.rejects(prep(await csvOf(rows, ['bucket', 's3_image', 'category', 'label'])), /missing column 'local_image'/);
});

test('a rerun with the same CSV and options does nothing; --force rebuilds; other options rebuild', async () => {
  const csv = await csvOf(set.images.slice(0, 10));
  const out = join(temp.path, 'idempotent');
  const first = await prep(csv, { out });
  assert.equal(first.upToDate, false);
  const before = (await stat(join(out, 'train.u8'))).mtimeMs;
  const again = await prep(csv, { out });
  assert.equal(again.upToDate, true);
  assert.equal(again.manifest.created, first.manifest.created);
  assert.equal((await stat(join(out, 'train.u8'))).mtimeMs, before);
  const forced = await prep(csv, { out, force: true });
  assert.equal(forced.upToDate, false);
  assert.notEqual(forced.manifest.created, first.manifest.created);
  const resized = await prep(csv, { out, size: 8 });
  assert.equal(resized.upToDate, false);
  assert.equal(resized.manifest.image_size, 8);
  const changed = await prep(await csvOf(set.images.slice(0, 11)), { out, size: 8 });
  assert.equal(changed.upToDate, false);
  // A directory that prep-data did not make is never replaced, not even with --force.
  const other = join(temp.path, 'not-a-dataset');
  await mkdir(other);
  await writeFile(join(other, 'precious.txt'), 'keep me');
  await assert.rejects(
    prep(csv, { out: other }),
    (error: unknown) => error instanceof UsageError && /holds files prep-data did not write \(precious\.txt\)/.test(error.message),
  );
  await assert.rejects(
    prep(csv, { out: other, force: true }),
    (error: unknown) => error instanceof UsageError && /did not write/.test(error.message),
  );
  assert.equal(await readFile(join(other, 'precious.txt'), 'utf8'), 'keep me');
});

test('the CLI: bad fractions exit 2; the pointer is the only stdout; --seed is --split-seed', async () => {
  const csvPath = join(temp.path, 'cli.csv');
  await writeFile(csvPath, await csvOf(set.images.slice(0, 10)));
  const run = async (argv: string[]) => {
    const stdout = new PassThrough();
    const stderr = new PassThrough();
    let out = '';
    let err = '';
    stdout.on('data', (chunk) => (out += chunk));
    stderr.on('data', (chunk) => (err += chunk));
    const stdin = Object.assign(new PassThrough(), { isTTY: true });
    const code = await runCli(prepDataCli, argv, { stdout, stderr, stdin: stdin as unknown as NodeJS.ReadStream, env: {}, cwd: temp.path });
    return { code, out, err };
  };
  const bad = await run(['--csv', csvPath, '--out', 'cli-out', '--train-pct', '0.8', '--val-pct', '0.15', '--test-pct', '0.15']);
  assert.equal(bad.code, 2);
  assert.match(bad.err, /must add up to 1/);
  assert.equal(bad.out, '');
  const none = await run(['--out', 'cli-out']);
  assert.equal(none.code, 2);
  assert.match(none.err, /pass --csv FILE or pipe/);
  const ok = await run(['--csv', csvPath, '--out', 'cli-out', '--img-dimensions', '8', '--seed', '9', '-q']);
  assert.equal(ok.code, 0, ok.err);
  assert.deepEqual(JSON.parse(ok.out), { kind: 'dataset', path: 'cli-out', manifest: join('cli-out', 'manifest.json') });
  assert.equal(ok.out.split('\n').length, 2);
  const manifest = (await openDataset(join(temp.path, 'cli-out'))).manifest;
  assert.equal(manifest.split.seed, 9);
  assert.equal(manifest.image_size, 8);
});
