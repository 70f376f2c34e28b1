import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { decodeToTensor, ImageRejected } from '@imgpipe/images';
import { readCsvFile, readCsvRows, sha256 } from '@imgpipe/kit';
import { createReadStream } from 'node:fs';
import sharp from 'sharp';
import { generateImageSet, TINY_IMAGE_SIZES, type ImageSet } from '@imgpipe/test-utils';
import { listFilesRecursive } from '@imgpipe/test-utils';
import { makeTempDir, type TempDir } from '@imgpipe/test-utils';

let temp: TempDir;
let set: ImageSet;
before(async () => {
  temp = await makeTempDir('imgpipe-image-set-');
  set = await generateImageSet({
    dir: join(temp.path, 'a'),
    count: 24,
    seed: 5,
    bad: true,
    sizes: TINY_IMAGE_SIZES,
    bucket: 'pets',
    prefix: 'raw/v1',
  });
});
after(() => temp.remove());

test('every good image decodes at its listed size; every bad one is rejected with its expected reason', async () => {
  assert.equal(set.images.length, 24);
  assert.equal(set.bad.length, 4);
  for (const row of set.images) {
    const meta = await sharp(row.local_image).metadata();
    assert.equal(meta.format, 'jpeg');
    assert.ok(
      TINY_IMAGE_SIZES.some(([w, h]) => w === meta.width && h === meta.height),
      `${row.file} ${meta.width}x${meta.height}`,
    );
    assert.equal((await decodeToTensor(row.local_image, { size: 16, fit: 'fill' })).length, 16 * 16 * 3);
  }
  const reasons = new Set<string>();
  for (const row of set.bad) {
    await assert.rejects(
      decodeToTensor(row.local_image, { size: 16, fit: 'fill' }),
      (error: unknown) => error instanceof ImageRejected && error.reason === row.expectedReason,
      row.file,
    );
    reasons.add(row.expectedReason!);
  }
  assert.deepEqual([...reasons].sort(), ['decompression-bomb', 'empty', 'not-an-image', 'unreadable']);
});

test('the CSV is in the seed format and matches the files', async () => {
  const { columns, rows } = await readCsvRows(createReadStream(set.csvPath), { source: set.csvPath });
  assert.deepEqual(columns, ['bucket', 's3_image', 'category', 'label', 'local_image']);
  assert.equal(rows.length, 28);
  const files = (await listFilesRecursive(set.dir)).filter((file) => file !== 'images.csv');
  assert.deepEqual(rows.map((row) => row.s3_image!.slice('raw/v1/'.length)).sort(), files);
  for (const row of rows) {
    assert.equal(row.bucket, 'pets');
    assert.equal(row.local_image, join(set.dir, row.s3_image!.slice('raw/v1/'.length)));
    assert.ok((row.category === 'cat' && row.label === '0') || (row.category === 'dog' && row.label === '1'), JSON.stringify(row));
  }
  assert.equal(rows.filter((row) => row.label === '0').length, 14);
  const withoutLocal = await generateImageSet({ dir: join(temp.path, 'c'), count: 2, seed: 5, sizes: TINY_IMAGE_SIZES, localImage: false });
  const table = await readCsvFile(withoutLocal.csvPath);
  assert.deepEqual(table.columns, ['bucket', 's3_image', 'category', 'label']);
});

test('the same seed gives the same bytes; another seed other bytes', async () => {
  const again = await generateImageSet({
    dir: join(temp.path, 'b'),
    count: 24,
    seed: 5,
    bad: true,
    sizes: TINY_IMAGE_SIZES,
    bucket: 'pets',
    prefix: 'raw/v1',
  });
  const other = await generateImageSet({ dir: join(temp.path, 'd'), count: 24, seed: 6, sizes: TINY_IMAGE_SIZES });
  for (const [index, row] of set.rows.entries()) {
    assert.equal(sha256(await readFile(again.rows[index]!.local_image)), sha256(await readFile(row.local_image)), row.file);
  }
  const differing = await Promise.all(
    set.images.map(async (row, index) => sha256(await readFile(row.local_image)) !== sha256(await readFile(other.images[index]!.local_image))),
  );
  assert.ok(differing.every(Boolean), 'seed 6 draws different images');
});

test('the classes differ in colour: cats warm (red > blue), dogs cool (blue > red) on average over the subject', async () => {
  const big = await generateImageSet({ dir: join(temp.path, 'e'), count: 40, seed: 9, sizes: [[96, 72]] });
  let correct = 0;
  for (const row of big.images) {
    const pixels = await decodeToTensor(row.local_image, { size: 32, fit: 'fill' });
    // Saturated pixels only: the background is nearly grey, the subject is not.
    let warm = 0;
    let cool = 0;
    for (let i = 0; i < pixels.length; i += 3) {
      const [r, g, b] = [pixels[i]!, pixels[i + 1]!, pixels[i + 2]!];
      if (Math.max(r, g, b) - Math.min(r, g, b) < 60) continue;
      if (r > b) warm++;
      else cool++;
    }
    if ((warm > cool ? 0 : 1) === row.label) correct++;
  }
  assert.ok(correct >= 38, `a colour rule separates ${correct}/40`);
});
