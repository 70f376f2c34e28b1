import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { isRegularFile } from './files.js';

test('isRegularFile: a file or a link to one; not a directory, a FIFO, a device or nothing', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'imgpipe-kit-files-'));
  try {
    await writeFile(join(dir, 'a.jpg'), 'x');
    await symlink(join(dir, 'a.jpg'), join(dir, 'link.jpg'));
    await mkdir(join(dir, 'sub'));
    execFileSync('mkfifo', [join(dir, 'fifo')]);
    assert.equal(await isRegularFile(join(dir, 'a.jpg')), true);
    assert.equal(await isRegularFile(join(dir, 'link.jpg')), true);
    for (const other of [join(dir, 'sub'), join(dir, 'fifo'), '/dev/zero', join(dir, 'missing')])
      assert.equal(await isRegularFile(other), false, other);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
