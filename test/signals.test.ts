// SIGINT / SIGTERM: download-s3 and prep-data (train: packages/train/src/train-integrity.e2e.test.ts) stop, remove
// their temp files and locks, and exit 130 / 143.
import assert from 'node:assert/strict';
import { mkdir, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { execa } from 'execa';
import { walkDir } from '@imgpipe/kit';
import { startFaultyProxy, waitFor } from '@imgpipe/test-utils';
import { BIN, CSV_URI, startPipelineFixture, type PipelineFixture } from './pipeline-fixture.js';

let fx: PipelineFixture;
before(async () => {
  fx = await startPipelineFixture('signals', 40);
});
after(() => fx?.close());

const litter = async (dir: string) => (await walkDir(dir).catch(() => [])).map((e) => e.path).filter((p) => /\.tmp$|\.lock$/.test(p));

test('download-s3 stopped by SIGINT or SIGTERM mid-download: 130 / 143, no temp file or lock in --dest', async () => {
  const proxy = await startFaultyProxy(fx.env.S3_ENDPOINT!, { latencyMs: 150 });
  try {
    for (const [signal, code] of [
      ['SIGINT', 130],
      ['SIGTERM', 143],
    ] as const) {
      const cwd = join(fx.temp.path, `download-${signal}`);
      await mkdir(cwd, { recursive: true });
      const env = { ...fx.env, S3_ENDPOINT: proxy.endpoint };
      const child = execa(join(BIN, 'download-s3'), ['--csv', CSV_URI, '--dest', 'data', '--out', 'images.csv', '--concurrency', '2'], {
        cwd,
        env,
        reject: false,
      });
      await waitFor(
        async () => (await walkDir(join(cwd, 'data')).catch(() => [])).some((e) => e.path.endsWith('.png') || e.path.endsWith('.jpg')),
        'a downloaded file',
      );
      child.kill(signal);
      const result = await child;
      assert.equal(result.exitCode, code, result.stderr);
      assert.match(result.stderr, new RegExp(`stopped by ${signal}`));
      assert.deepEqual(await litter(cwd), [], `${signal}: nothing left behind`);
      assert.deepEqual(
        (await readdir(cwd)).filter((n) => n !== 'data'),
        [],
        'no output CSV under its final name',
      );
    }
  } finally {
    await proxy.close();
  }
});

test('prep-data stopped by SIGTERM or SIGINT mid-build: 143 / 130, its build directory and lock removed', async () => {
  const cwd = join(fx.temp.path, 'prep-signals');
  await mkdir(cwd, { recursive: true });
  const download = await execa(join(BIN, 'download-s3'), ['--csv', CSV_URI, '--dest', 'data', '--out', 'images.csv'], {
    cwd,
    env: fx.env,
    reject: false,
  });
  assert.equal(download.exitCode, 0, download.stderr);
  for (const [signal, code] of [
    ['SIGTERM', 143],
    ['SIGINT', 130],
  ] as const) {
    const child = execa(join(BIN, 'prep-data'), ['--csv', 'images.csv', '--out', `prep-${signal}`, '--concurrency', '1'], {
      cwd,
      env: fx.env,
      reject: false,
    });
    await waitFor(
      async () => (await readdir(cwd)).some((name) => name.startsWith(`.prep-${signal}.`) && name.endsWith('.tmp')),
      'the build directory',
    );
    child.kill(signal);
    const result = await child;
    assert.equal(result.exitCode, code, result.stderr);
    assert.deepEqual(await litter(cwd), [], `${signal}: nothing left behind`);
    assert.ok(!(await readdir(cwd)).includes(`prep-${signal}`), 'no dataset under the final name');
  }
});
