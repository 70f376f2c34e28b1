import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { makeTempDir } from '@imgpipe/test-utils';

const STAMP = fileURLToPath(new URL('../scripts/stamp.mjs', import.meta.url));

test('the prep stamp changes when a listed image changes in place under the same CSV', async () => {
  await using temp = await makeTempDir('imgpipe-stamp-');
  const image = join(temp.path, 'a.jpg');
  await writeFile(image, 'pixels v1');
  const csv = join(temp.path, 'images.csv');
  await writeFile(csv, `category,label,local_image\ncat,0,${image}\n`);
  const stamp = join(temp.path, '.stamps', 'prep');
  const run = () => execa(process.execPath, [STAMP, stamp, '--file', csv, '--listed', csv, '--', '--img-dimensions', '8']);
  assert.match((await run()).stderr, /first run/);
  const first = await readFile(stamp, 'utf8');
  assert.equal((await run()).stderr, '', 'nothing changed: the stamp is left alone');
  await writeFile(image, 'pixels v2');
  assert.match((await run()).stderr, /images listed in .*images\.csv changed/);
  assert.notEqual(await readFile(stamp, 'utf8'), first);
});
