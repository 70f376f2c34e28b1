import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, test } from 'node:test';
import { openDataset } from '@imgpipe/kit';
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
  const run = (...extra: string[]) => execa('node', [BIN, '--out', 'prep', '--img-dimensions', '16', '--split-seed', '5', ...extra], { cwd: temp.path, input: csv, reject: false });
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

test('prep-data exits 2 with one clear line for fractions that do not add up to 1', async () => {
  const result = await execa('node', [BIN, '--csv', set.csvPath, '--out', 'bad', '--train-pct', '0.9'], { cwd: temp.path, reject: false });
  assert.equal(result.exitCode, 2);
  assert.equal(result.stdout, '');
  assert.match(result.stderr, /^prep-data: error: --train-pct 0.9 \+ --val-pct 0.15 \+ --test-pct 0.15 = 1.2; they must add up to 1/);
});
