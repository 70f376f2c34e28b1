import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { walkDir } from './walk-dir.js';

test('walkDir lists every entry with its kind, sorted, and never follows a symbolic link', async () => {
  const root = await mkdtemp(join(tmpdir(), 'imgpipe-walk-'));
  try {
    const dir = join(root, 'dir');
    const outside = join(root, 'outside');
    await mkdir(join(dir, 'b', 'c'), { recursive: true });
    await mkdir(join(dir, '.hidden'));
    await mkdir(outside);
    await writeFile(join(outside, 'secret.txt'), 'x');
    await writeFile(join(dir, 'a.txt'), 'a');
    await writeFile(join(dir, 'b', 'c', 'd.bin'), 'd');
    await writeFile(join(dir, '.hidden', 'e'), 'e');
    await symlink(outside, join(dir, 'b', 'linked-dir'));
    await symlink(join(dir, 'a.txt'), join(dir, 'linked-file'));
    const socket = createServer().listen(join(dir, 'b', 'socket'));
    await new Promise((resolve) => socket.once('listening', resolve));
    assert.deepEqual(await walkDir(dir), [
      { path: '.hidden', kind: 'directory' },
      { path: '.hidden/e', kind: 'file' },
      { path: 'a.txt', kind: 'file' },
      { path: 'b', kind: 'directory' },
      { path: 'b/c', kind: 'directory' },
      { path: 'b/c/d.bin', kind: 'file' },
      { path: 'b/linked-dir', kind: 'link' },
      { path: 'b/socket', kind: 'other' },
      { path: 'linked-file', kind: 'link' },
    ]);
    await new Promise((resolve) => socket.close(resolve));
    assert.deepEqual(await walkDir(outside), [{ path: 'secret.txt', kind: 'file' }]);
    await assert.rejects(walkDir(join(root, 'missing')), { code: 'ENOENT' });
  } finally {
    await rm(root, { recursive: true, force: true });
  }
});
