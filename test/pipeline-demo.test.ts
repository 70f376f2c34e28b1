// `make demo`'s script, end to end (run `npx tsc -b` first): generated images, its own S3 server, every stage,
// a served request and the summary; the S3 server it started is gone when it exits, Ctrl-C included.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { makeTempDir, type TempDir } from '@imgpipe/test-utils';
import { hookedBinDir, REPO, runCommand } from './pipeline-fixture.js';

let temp: TempDir;
before(async () => {
  temp = await makeTempDir('imgpipe-pipeline-demo-');
});
after(() => temp?.remove());

const endpointOf = (stderr: string) => /S3 endpoint (http:\/\/127\.0\.0\.1:\d+)/.exec(stderr)?.[1];
async function refused(endpoint: string): Promise<boolean> {
  try {
    await fetch(endpoint, { signal: AbortSignal.timeout(5000) });
    return false;
  } catch (error) {
    return /ECONNREFUSED/.test(String((error as { cause?: unknown }).cause ?? error));
  }
}

test('the demo runs every stage, serves one request, reports an honest test accuracy above 90% and exits 0', async () => {
  const work = join(temp.path, 'demo');
  const result = await runCommand(process.execPath, ['scripts/demo.mjs', '--work', work], { env: { IMGPIPE_NO_WEBGPU: '1' }, timeoutMs: 110_000 });
  assert.equal(result.code, 0, result.stderr);
  const summary = JSON.parse(result.stdout.trim()) as { kind: string; test_accuracy: number; run: string; uploaded: string };
  assert.equal(summary.kind, 'demo');
  assert.ok(summary.test_accuracy > 0.9, String(summary.test_accuracy));
  assert.equal(summary.uploaded, 's3://imgpipe-demo/results/');
  assert.ok(summary.run.startsWith(join(work, 'runs')), summary.run);
  // The served answer in the seed's format, the summary, and the note about the locally built backbone.
  assert.match(result.stderr, /HTTP 200 \{"[^"]+\.jpg":\{"pred":"(cat|dog)"/);
  assert.match(result.stderr, /test accuracy\s+\d+\.\d% on the test split/);
  assert.match(result.stderr, /no pretrained weights can be downloaded offline/);
  for (const tool of ['download-s3', 'prep-data', 'train', 'eval-model', 'upload-s3'])
    assert.match(result.stdout + result.stderr, new RegExp(`\\.bin/${tool} `));
  const endpoint = endpointOf(result.stderr);
  assert.ok(endpoint, 'no S3 endpoint in the output');
  assert.ok(await refused(endpoint), 'the demo left its S3 server running');
});

test('--trained-backbone: a small conv net trained on the training split only becomes the backbone', async () => {
  const work = join(temp.path, 'trained');
  const result = await runCommand(process.execPath, ['scripts/demo.mjs', '--work', work, '--trained-backbone'], {
    env: { IMGPIPE_NO_WEBGPU: '1' },
    timeoutMs: 110_000,
  });
  assert.equal(result.code, 0, result.stderr);
  assert.match(result.stderr, /trained a small conv net end to end on the training split of \S+ only/);
  assert.match(result.stderr, /backbone\s+\S+backbone-trained\/model\.json \(a small conv net trained on the training split only\)/);
  const summary = JSON.parse(result.stdout.trim()) as { test_accuracy: number; model: string };
  assert.ok(summary.test_accuracy > 0.9, String(summary.test_accuracy));
  const { readModelCard } = await import('@imgpipe/kit');
  const card = await readModelCard(summary.model);
  assert.equal(card.backbone.format, 'tfjs-layers');
  assert.equal(card.backbone.feature_layer, 'features');
  assert.equal(card.preprocess.name, 'tf');
});

test('Ctrl-C stops the demo and the S3 server it started', async () => {
  const work = join(temp.path, 'interrupted');
  // A process group of its own, like a terminal's foreground job: SIGINT goes to every process in it.
  const child = spawn(process.execPath, ['scripts/demo.mjs', '--work', work], {
    cwd: REPO,
    env: {
      ...process.env,
      IMGPIPE_NO_WEBGPU: '1',
      IMGPIPE_BIN_DIR: await hookedBinDir(join(temp.path, 'hooked-bin')),
      IMGPIPE_TEST_EPOCH_DELAY_MS: '300',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const deadline = Date.now() + 90_000;
  while (!/trial 1\/4 t001:/.test(stderr)) {
    assert.ok(Date.now() < deadline && child.exitCode === null, `the demo never reached train:\n${stderr}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  process.kill(-child.pid!, 'SIGINT');
  assert.equal(await exited, 130, stderr);
  assert.match(stderr, /SIGINT: stopping the demo/);
  const endpoint = endpointOf(stderr);
  assert.ok(endpoint && (await refused(endpoint)), 'the S3 server outlived the demo');
  // No pointer claims a run that was interrupted.
  const { existsSync } = await import('node:fs');
  assert.equal(existsSync(join(work, 'run.json')), false);
});
