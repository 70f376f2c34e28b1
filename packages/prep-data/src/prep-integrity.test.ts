import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { copyFile, mkdir, readdir, readFile, symlink, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { basename, dirname, join, relative } from 'node:path';
import { PassThrough } from 'node:stream';
import { after, before, test } from 'node:test';
import {
  csvString,
  EXIT_LOCKED,
  LABEL_DECISION_COLUMNS,
  ImgpipeError,
  InputError,
  lockPathFor,
  openDataset,
  runCli,
  sha256,
  SPLIT_NAMES,
  UsageError,
} from '@imgpipe/kit';
import { generateImageSet, makeTempDir, TINY_IMAGE_SIZES, type ImageSet, type TempDir } from '@imgpipe/test-utils';
import { prepDataCli } from './cli.js';
import { runPrepData, type PrepDataOptions } from './prep.js';

let temp: TempDir;
let set: ImageSet;
const COLUMNS = ['bucket', 's3_image', 'category', 'label', 'local_image'];

before(async () => {
  temp = await makeTempDir('imgpipe-prep-integrity-');
  set = await generateImageSet({ dir: join(temp.path, 'images'), count: 12, seed: 5, sizes: TINY_IMAGE_SIZES });
});
after(() => temp.remove());

const csvOf = async (rows: readonly Record<string, unknown>[], columns = COLUMNS) =>
  Buffer.from(await csvString(columns, rows as Record<string, unknown>[]));
const prep = (csv: Buffer, overrides: Partial<PrepDataOptions>) =>
  runPrepData({
    csv,
    csvSource: 'test.csv',
    out: join(temp.path, 'out'),
    cwd: temp.path,
    size: 8,
    fractions: { train: 0.5, val: 0.25, test: 0.25 },
    seed: 1,
    quiet: true,
    concurrency: 2,
    ...overrides,
  });
const local = (rows: readonly { bucket: string; s3_image: string; category: string; label: number; local_image: string }[]) =>
  rows.map(({ category, label, local_image }) => ({ category, label, local_image }));

test('an image changed in place (same CSV) rebuilds the dataset, with or without local_sha256', async () => {
  const dir = join(temp.path, 'stale');
  await mkdir(dir);
  const rows = await Promise.all(
    set.images.slice(0, 6).map(async (row, i) => {
      const path = join(dir, `${i}.png`);
      await copyFile(row.local_image, path);
      return { category: row.category, label: row.label, local_image: path };
    }),
  );
  const out = join(temp.path, 'stale-out');
  const csv = await csvOf(rows, ['category', 'label', 'local_image']);
  const first = await prep(csv, { out });
  assert.equal((await prep(csv, { out })).upToDate, true);
  await copyFile(set.images[7]!.local_image, rows[2]!.local_image); // other pixels, same name, same CSV
  const second = await prep(csv, { out });
  assert.equal(second.upToDate, false, 'the changed image is noticed');
  assert.notEqual(second.manifest.images_sha256, first.manifest.images_sha256);
  const pixels = SPLIT_NAMES.map((s) => second.manifest.splits[s].pixels.sha256).join();
  assert.notEqual(pixels, SPLIT_NAMES.map((s) => first.manifest.splits[s].pixels.sha256).join(), 'the new pixels are in the dataset');
  // A local_sha256 column (download-s3's) that is older than an edit in place does not hide the edit.
  const withSha = await csvOf(
    rows.map((row) => ({ ...row, local_sha256: 'a'.repeat(64) })),
    ['category', 'label', 'local_image', 'local_sha256'],
  );
  assert.equal((await prep(withSha, { out })).upToDate, false);
  assert.equal((await prep(withSha, { out })).upToDate, true);
  await copyFile(set.images[8]!.local_image, rows[4]!.local_image);
  assert.equal((await prep(withSha, { out })).upToDate, false, 'the file is what counts');
});

test('--force never deletes a directory prep-data did not make: inputs inside --out, the working directory', async () => {
  const dir = join(temp.path, 'inputs');
  await mkdir(dir);
  const rows = await Promise.all(
    set.images.slice(0, 6).map(async (row, i) => {
      const path = join(dir, `${i}.png`);
      await copyFile(row.local_image, path);
      return { category: row.category, label: row.label, local_image: path };
    }),
  );
  const csv = await csvOf(rows, ['category', 'label', 'local_image']);
  for (const out of [dir, '.', '..']) {
    await assert.rejects(prep(csv, { out, force: true }), (error: unknown) => {
      assert.ok(error instanceof UsageError, String(error));
      assert.equal(error.exitCode, 2);
      assert.match(error.message, /holds input image|working directory or one above it/);
      return true;
    });
  }
  assert.equal((await readdir(dir)).length, 6, 'the input images are still there');
  assert.ok((await readdir(temp.path)).includes('images'), 'the working directory is intact');
});

test('the same image under alias paths or another name is kept once and listed as duplicate', async () => {
  const image = set.images[0]!;
  const rel = relative(temp.path, image.local_image);
  const dir = dirname(rel);
  const name = basename(rel);
  const aliasDir = join(temp.path, 'alias');
  await mkdir(aliasDir, { recursive: true });
  await symlink(image.local_image, join(aliasDir, 'link.png'));
  await copyFile(image.local_image, join(aliasDir, 'copy.png'));
  const aliases = [rel, `./${rel}`, `${dir}//${name}`, `${dir}/../${basename(dir)}/${name}`, 'alias/link.png', 'alias/copy.png'];
  const others = set.images.slice(1, 9).map((row) => ({ category: row.category, label: row.label, local_image: row.local_image }));
  const rows = [...aliases.map((path) => ({ category: image.category, label: image.label, local_image: path })), ...others];
  const result = await prep(await csvOf(rows, ['category', 'label', 'local_image']), { out: join(temp.path, 'dedupe') });
  const dupes = result.rejected.filter((row) => row.reason === 'duplicate');
  assert.deepEqual(
    dupes.map((row) => row.local_image),
    aliases.slice(1),
  );
  for (const row of dupes) assert.match(row.detail, /as line 2 \(/, 'names the kept row');
  const dataset = await openDataset(join(temp.path, 'dedupe'));
  const all = (await Promise.all(SPLIT_NAMES.map((s) => dataset.rows(s)))).flat();
  assert.equal(all.length, 1 + others.length, 'one copy of the image in the dataset');
  const rejectedCsv = await readFile(join(temp.path, 'dedupe', 'rejected.csv'), 'utf8');
  assert.match(rejectedCsv, /alias\/copy\.png,\d,[^,]*,duplicate,the same content/);
});

test('a fresh build hashes each file as it decodes it: the dataset and rejections of a build that hashes first', async () => {
  const dir = join(temp.path, 'one-pass');
  await mkdir(dir);
  const [first, second] = [set.images[0]!, set.images[1]!];
  await copyFile(first.local_image, join(dir, 'copy.png'));
  await writeFile(join(dir, 'broken.png'), 'not an image at all');
  const rows = [
    ...set.images.slice(0, 8).map(({ category, label, local_image }) => ({ category, label, local_image })),
    { category: first.category, label: first.label, local_image: join(dir, 'copy.png') },
    { category: second.category, label: second.label, local_image: `./${relative(temp.path, second.local_image)}` },
    { category: first.category, label: first.label, local_image: join(dir, 'broken.png') },
    { category: second.category, label: second.label, local_image: join(dir, 'missing.png') },
  ];
  const csv = await csvOf(rows, ['category', 'label', 'local_image']);
  const onePass = await prep(csv, { out: join(temp.path, 'one-pass-out') });
  // Review decisions need every file's hash before decoding: with none to apply, the same images, hashed first.
  const noDecisions = { text: Buffer.from(`${LABEL_DECISION_COLUMNS.join(',')}\n`), source: 'none.csv' };
  const hashedFirst = await prep(csv, { out: join(temp.path, 'hashed-first-out'), decisions: noDecisions });
  assert.deepEqual(
    onePass.rejected.map((row) => row.reason),
    ['duplicate', 'duplicate', 'not-an-image', 'missing'],
  );
  assert.deepEqual(onePass.rejected, hashedFirst.rejected);
  assert.deepEqual(onePass.manifest.splits, hashedFirst.manifest.splits, 'the same pixels and rows in the same splits');
  assert.equal(onePass.manifest.images_sha256, hashedFirst.manifest.images_sha256);
  assert.equal((await prep(csv, { out: join(temp.path, 'one-pass-out') })).upToDate, true, 'its rerun sees nothing changed');
});

test('inconsistent labels and categories exit 2 naming the rows, without a huge allocation or a stack', async () => {
  const rows = set.images.slice(0, 6).map((row) => ({ category: row.category, label: row.label, local_image: row.local_image }));
  const cases: [string, Record<string, unknown>[], RegExp][] = [
    [
      'one name for two labels',
      rows.map((r) => ({ ...r, category: 'cat' })),
      /category 'cat' names 2 labels: label 0 \(line[s]? [\d, ]+\) and label 1/,
    ],
    [
      'a single class',
      rows.map((r) => ({ ...r, label: 0, category: 'cat' })),
      /every row has label 0 \('cat'\): a classifier needs at least two classes/,
    ],
    [
      'a huge label',
      rows.map((r, i) => (i === 3 ? { ...r, label: 99999999, category: 'huge' } : r)),
      /no row has label 2 .*rows with label 99999999: line 5\)/,
    ],
    [
      'a label far beyond safe integers',
      rows.map((r, i) => (i === 1 ? { ...r, label: '99999999999999999999999' } : r)),
      /'label' must be a non-negative integer on line 3/,
    ],
  ];
  for (const [what, table, pattern] of cases) {
    const heapBefore = process.memoryUsage().heapUsed;
    await assert.rejects(prep(await csvOf(table, ['category', 'label', 'local_image']), { out: join(temp.path, 'nonsense') }), (error: unknown) => {
      assert.ok(error instanceof InputError, `${what}: ${String(error)}`);
      assert.match(error.message, pattern, what);
      return true;
    });
    assert.ok(process.memoryUsage().heapUsed - heapBefore < 64e6, `${what}: no huge allocation`);
  }
  const csvPath = join(temp.path, 'huge.csv');
  await writeFile(csvPath, await csvOf(cases[2]![1], ['category', 'label', 'local_image']));
  const stderr = new PassThrough();
  let err = '';
  stderr.on('data', (chunk) => (err += chunk));
  const code = await runCli(prepDataCli, ['--csv', csvPath, '--out', 'cli-huge'], {
    stdout: new PassThrough(),
    stderr,
    stdin: Object.assign(new PassThrough(), { isTTY: true }) as unknown as NodeJS.ReadStream,
    env: {},
    cwd: temp.path,
  });
  assert.equal(code, 2);
  assert.match(err, /line 5/);
  assert.doesNotMatch(err, /\n\s+at /, 'no stack trace');
});

test("a build of the same --out by a live process: exit 75; a dead build's lock and temp directory are cleaned up", async () => {
  const csv = await csvOf(local(set.images.slice(0, 6)), ['category', 'label', 'local_image']);
  const out = join(temp.path, 'locked-out');
  const holder = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60000)'], { stdio: 'ignore' });
  try {
    await writeFile(
      lockPathFor(out),
      JSON.stringify({ pid: holder.pid, hostname: hostname(), started: new Date().toISOString(), tool: 'prep-data' }),
    );
    await assert.rejects(
      prep(csv, { out }),
      (error: unknown) =>
        error instanceof ImgpipeError && error.exitCode === EXIT_LOCKED && /--out .* dataset build is locked by prep-data/.test(error.message),
    );
  } finally {
    holder.kill();
  }
  await writeFile(lockPathFor(out), JSON.stringify({ pid: 99999999, hostname: hostname(), started: new Date().toISOString(), tool: 'prep-data' }));
  const leftover = join(temp.path, '.locked-out.99999999.deadbeef.tmp');
  await mkdir(leftover);
  await writeFile(join(leftover, 'train.u8'), Buffer.alloc(1000));
  const result = await prep(csv, { out });
  assert.equal(result.upToDate, false);
  const names = await readdir(temp.path);
  assert.ok(!names.includes(basename(leftover)), 'the dead build directory is removed');
  assert.ok(!names.includes(basename(lockPathFor(out))), 'the lock is released');
  assert.equal(sha256(await readFile(join(out, 'manifest.json'))).length, 64);
});
