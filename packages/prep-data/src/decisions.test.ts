import assert from 'node:assert/strict';
import { copyFile, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { after, before, test } from 'node:test';
import { csvString, LABEL_DECISION_COLUMNS, openDataset, readCsvFile, runCli, sha256, SPLIT_NAMES, type DatasetRow } from '@imgpipe/kit';
import { capture, generateImageSet, makeTempDir, TINY_IMAGE_SIZES, type ImageSet, type TempDir } from '@imgpipe/test-utils';
import { prepDataCli } from './cli.js';

let temp: TempDir;
let set: ImageSet;
let csvPath: string;
const COLUMNS = ['bucket', 's3_image', 'category', 'label', 'local_image'];

before(async () => {
  temp = await makeTempDir('imgpipe-prep-decisions-');
  set = await generateImageSet({ dir: join(temp.path, 'images'), count: 12, seed: 8, sizes: TINY_IMAGE_SIZES });
  // The CSV names image 0 by a copy at another path: a decision made on its content must still find it.
  const moved = join(temp.path, 'images', 'moved-copy.jpg');
  await copyFile(set.images[0]!.local_image, moved);
  const rows = set.images.map((row, i) => (i === 0 ? { ...row, local_image: moved } : row));
  csvPath = join(temp.path, 'images.csv');
  await writeFile(
    csvPath,
    await csvString(
      COLUMNS,
      rows.map((row) => ({ ...row })),
    ),
  );
});
after(() => temp.remove());

async function prepCli(argv: string[]) {
  const stdout = capture();
  const stderr = capture();
  const stdin = Object.assign(new PassThrough(), { isTTY: true });
  const code = await runCli(prepDataCli, argv, {
    stdout: stdout.stream,
    stderr: stderr.stream,
    stdin: stdin as unknown as NodeJS.ReadStream,
    env: {},
    cwd: temp.path,
  });
  return { code, out: stdout.text(), err: stderr.text() };
}

async function allRows(dir: string): Promise<DatasetRow[]> {
  const dataset = await openDataset(dir);
  return (await Promise.all(SPLIT_NAMES.map((split) => dataset.rows(split)))).flat();
}

const fileSha = async (path: string) => sha256(await readFile(path));
const source = (i: number) => `s3://${set.images[i]!.bucket}/${set.images[i]!.s3_image}`;

test('prep-data --decisions drops and relabels the images it names by content, records it all, and leaves the CSV alone', async () => {
  const classes = ['cat', 'dog'];
  const decisions = await csvString(LABEL_DECISION_COLUMNS, [
    {
      sha256: await fileSha(set.images[0]!.local_image),
      action: 'drop',
      label: '',
      source: 'somewhere/else.jpg',
      split: 'train',
      given_label: classes[set.images[0]!.label],
    },
    {
      sha256: await fileSha(set.images[1]!.local_image),
      action: 'relabel',
      label: classes[1 - set.images[1]!.label],
      source: source(1),
      split: 'val',
      given_label: '',
    },
    { sha256: '', action: 'drop', label: '', source: source(2), split: 'test', given_label: '' },
    {
      sha256: await fileSha(set.images[3]!.local_image),
      action: 'keep',
      label: classes[set.images[3]!.label],
      source: source(3),
      split: '',
      given_label: '',
    },
    { sha256: 'f'.repeat(64), action: 'drop', label: '', source: 'gone.jpg', split: '', given_label: '' },
  ]);
  const decisionsPath = join(temp.path, 'label-decisions.csv');
  await writeFile(decisionsPath, decisions);
  const csvBefore = await readFile(csvPath);

  const result = await prepCli(['--csv', csvPath, '--decisions', decisionsPath, '--out', 'reviewed', '--img-dimensions', '8']);
  assert.equal(result.code, 0, result.err);
  assert.match(result.err, /2 dropped, 1 relabelled, 1 kept as labelled by review/);
  assert.match(result.err, /1 decision names no image of this CSV \(first: line 6\)/);
  const dir = join(temp.path, 'reviewed');
  const rows = await allRows(dir);
  assert.equal(rows.length, set.images.length - 2);
  const bySource = new Map(rows.map((row) => [row.source, row]));
  assert.ok(!bySource.has(source(0)) && !bySource.has(source(2)), 'dropped images are not in the dataset');
  assert.equal(bySource.get(source(1))!.label, 1 - set.images[1]!.label);
  assert.equal(bySource.get(source(1))!.category, classes[1 - set.images[1]!.label]);
  assert.equal(bySource.get(source(3))!.label, set.images[3]!.label);
  for (const row of rows) assert.equal(row.fields.content_sha256, await fileSha(row.fields.local_image!));

  const { manifest } = await openDataset(dir);
  assert.deepEqual(manifest.review, {
    decisions_file: decisionsPath,
    decisions_sha256: sha256(decisions),
    dropped: 2,
    relabelled: 1,
    kept: 1,
    unmatched: 1,
  });
  const { records } = await readCsvFile(join(dir, 'rejected.csv'));
  const rejected = [];
  for await (const record of records) rejected.push(record.row!);
  assert.deepEqual(
    rejected.map((r) => [r.source, r.reason]),
    [
      [source(0), 'dropped-by-review'],
      [source(2), 'dropped-by-review'],
    ],
  );
  assert.match(rejected[0]!.detail!, /line 2 of .*label-decisions\.csv/);
  assert.deepEqual(await readFile(csvPath), csvBefore, 'the images CSV is never modified');

  // Same CSV and decisions: up to date. Other decisions: rebuilt.
  const again = await prepCli(['--csv', csvPath, '--decisions', decisionsPath, '--out', 'reviewed', '--img-dimensions', '8']);
  assert.match(again.err, /is up to date/);
  await writeFile(decisionsPath, decisions.split('\n').slice(0, 2).join('\n'));
  const changed = await prepCli(['--csv', csvPath, '--decisions', decisionsPath, '--out', 'reviewed', '--img-dimensions', '8']);
  assert.equal(changed.code, 0, changed.err);
  assert.equal((await allRows(dir)).length, set.images.length - 1);
});

test('a bad decisions file is exit 2 naming its lines; nothing is built', async () => {
  const path = join(temp.path, 'bad-decisions.csv');
  await writeFile(path, `sha256,action,label\nabc,drop,\n${'a'.repeat(64)},rename,cat\n${'b'.repeat(64)},relabel,horse\n`);
  const result = await prepCli(['--csv', csvPath, '--decisions', path, '--out', 'bad-out', '--img-dimensions', '8']);
  assert.equal(result.code, 2);
  assert.match(result.err, /line 2: sha256 "abc" is not 64 hex digits/);
  assert.match(result.err, /line 3: action "rename" is not one of keep, relabel, drop/);
  assert.match(result.err, /line 4: label "horse" is not one of the classes \(cat, dog\)/);
  assert.equal(result.out, '');
  const missing = await prepCli(['--csv', csvPath, '--decisions', 'nope.csv', '--out', 'bad-out']);
  assert.equal(missing.code, 2);
  assert.match(missing.err, /--decisions nope.csv: cannot read the file \(ENOENT\)/);
  // The decode threads, started before the CSV is read, are closed again: a thread left running would keep this
  // test process alive.
  const noCsv = await prepCli(['--csv', 'nope.csv', '--out', 'bad-out']);
  assert.equal(noCsv.code, 2);
  assert.match(noCsv.err, /--csv nope.csv: cannot read the file \(ENOENT\)/);
});
