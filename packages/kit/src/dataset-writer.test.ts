import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { SplitFilesWriter } from './dataset-writer.js';

test('split files: each image is written before append returns (the buffer can be reused), past the background flushes', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'imgpipe-dataset-writer-'));
  try {
    const writer = await SplitFilesWriter.open(dir, { classes: ['cat', 'dog'], columns: ['index', 'source', 'label', 'category'] });
    const image = new Uint8Array(224 * 224 * 3);
    const expected = createHash('sha256');
    // 300 images of 150 KB: 45 MB, past the 32 MB after which a background fdatasync starts.
    for (let i = 0; i < 300; i++) {
      image.fill(i & 255);
      image[i] = 7;
      expected.update(image);
      assert.equal(await writer.append('train', image, { source: `s3://b/${i}.jpg`, label: i % 2, category: i % 2 ? 'dog' : 'cat' }), i);
    }
    const splits = await writer.finish();
    const pixels = await readFile(join(dir, 'train.u8'));
    assert.equal(pixels.length, 300 * image.length);
    assert.equal(splits.train.pixels.sha256, expected.digest('hex'));
    assert.equal(createHash('sha256').update(pixels).digest('hex'), splits.train.pixels.sha256);
    assert.equal(pixels[299 * image.length + 299], 7);
    assert.equal(pixels[299 * image.length], 299 & 255);
    assert.deepEqual(splits.train.per_class, [150, 150]);
    assert.equal(splits.val.count, 0);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
