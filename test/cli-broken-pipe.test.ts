import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { execa } from 'execa';
import { makeTempDir, type TempDir } from '@imgpipe/test-utils';

// The real bin, which imports dist/: `make test` builds first.
const BIN = join(process.cwd(), 'packages/download-s3/bin/download-s3.js');

describe('a tool whose reader goes away', () => {
  let temp: TempDir;
  before(async () => {
    temp = await makeTempDir();
    const lines = ['bucket,s3_image,category,label,local_image'];
    for (let i = 0; i < 3000; i++) {
      const file = join(temp.path, `k${i}.jpg`);
      await writeFile(file, '');
      lines.push(`b,k${i}.jpg,cat,0,${file}`);
    }
    await writeFile(join(temp.path, 'images.csv'), `${lines.join('\n')}\n`);
  });
  after(() => temp.remove());

  it('stops quietly with the SIGPIPE status, as Unix tools do, instead of an EPIPE stack trace', async () => {
    const script = `node ${BIN} --no-download-data --csv images.csv 2>err.txt | head -n 2; echo "\${PIPESTATUS[0]}"; cat err.txt`;
    const { stdout } = await execa('bash', ['-c', script], { cwd: temp.path, env: { NODE_NO_WARNINGS: '1' } });
    const lines = stdout.split('\n');
    assert.equal(lines[0], 'bucket,s3_image,category,label,local_image,local_sha256');
    assert.equal(lines[2], '141');
    assert.doesNotMatch(stdout, /EPIPE|at .*\.js:\d+/);
  });
});
