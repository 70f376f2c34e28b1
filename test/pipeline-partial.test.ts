// A stage that fails after streaming part of its output must stop every later stage from committing: the real
// bins through real pipes (run `npx tsc -b` first) against the local S3 server, with an images CSV that lists one
// object the bucket does not have. download-s3 streams the other rows and exits 2; before, the pipe trained on
// them and upload-s3 published.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { csvString } from '@imgpipe/kit';
import { uploadObject } from '@imgpipe/s3';
import { BIN, BUCKET, PIPELINE, runCommand, startPipelineFixture, type PipelineFixture } from './pipeline-fixture.js';

const PARTIAL_CSV_URI = `s3://${BUCKET}/images/partial.csv`;

let fixture: PipelineFixture;
before(async () => {
  fixture = await startPipelineFixture('pipeline-partial', 48);
  const first = fixture.set.images[0]!;
  const rows = [
    ...fixture.set.images,
    { bucket: BUCKET, s3_image: 'images/missing/never-uploaded.png', category: first.category, label: first.label },
  ];
  await uploadObject(fixture.server.client, BUCKET, 'images/partial.csv', {
    bytes: await csvString(['bucket', 's3_image', 'category', 'label'], rows as unknown as Record<string, unknown>[]),
  });
});
after(() => fixture?.close());

const pipelineArgs = (work: string, prefix: string, extra: string[] = []) => [
  PIPELINE,
  '--work',
  work,
  '--csv',
  PARTIAL_CSV_URI,
  '--bucket',
  BUCKET,
  '--prefix',
  prefix,
  ...extra,
  '--',
  ...fixture.trainFlags,
];

test('pipeline.sh: one missing object stops the run at download-s3 (exit 10); nothing is trained or published', async () => {
  const work = join(fixture.temp.path, 'missing');
  const result = await runCommand('bash', pipelineArgs(work, 'missing/'), { env: fixture.env });
  assert.equal(result.code, 10, result.stderr);
  assert.match(result.stderr, /download-s3 failed \(exit 2\)/);
  assert.deepEqual(await fixture.keys('missing/'), []);
  assert.equal(existsSync(join(work, 'last-upload.json')), false);
  // prep-data refused the CSV download-s3 marked incomplete, so no dataset and no run exist.
  assert.match(await readFile(join(work, 'logs', '2-prep-data.log'), 'utf8'), /the CSV is incomplete: download-s3: 1 of 49 rows failed/);
  assert.equal(existsSync(join(work, 'prep', 'manifest.json')), false);
  assert.deepEqual(await readdir(join(work, 'runs')).catch(() => []), []);
  assert.match(await readFile(join(work, 'logs', '5-upload-s3.log'), 'utf8'), /not started/);
});

test('a plain pipe with pipefail publishes nothing after a failed download, and exits non-zero', async () => {
  const work = join(fixture.temp.path, 'plain');
  const script = [
    `set -euo pipefail; "$B/download-s3" --csv ${PARTIAL_CSV_URI} --dest "$W/data"`,
    ' | "$B/prep-data" --out "$W/prep"',
    ` | "$B/train" --out "$W/runs" ${fixture.trainFlags.map((flag) => `'${flag}'`).join(' ')}`,
    ' | "$B/eval-model"',
    ` | "$B/upload-s3" --bucket ${BUCKET} --prefix plain/`,
  ].join(' \\\n');
  const result = await runCommand('bash', ['-c', script], { env: { ...fixture.env, B: BIN, W: work } });
  assert.notEqual(result.code, 0, result.stderr);
  assert.equal(result.stdout, '');
  assert.match(result.stderr, /download-s3: .*no such key/);
  assert.match(result.stderr, /prep-data: .*the CSV is incomplete/);
  assert.deepEqual(await fixture.keys('plain/'), []);
  assert.equal(existsSync(join(work, 'prep', 'manifest.json')), false);
});

test('pipeline.sh --max-failures 1 accepts the missing image: trains on the others and publishes (exit 0)', async () => {
  const work = join(fixture.temp.path, 'tolerated');
  const result = await runCommand('bash', pipelineArgs(work, 'tolerated/', ['--max-failures', '1']), { env: fixture.env });
  assert.equal(result.code, 0, result.stderr);
  const manifest = JSON.parse(await readFile(join(work, 'prep', 'manifest.json'), 'utf8')) as { splits: Record<string, { count: number }> };
  assert.equal(
    Object.values(manifest.splits).reduce((sum, split) => sum + split.count, 0),
    48,
  );
  const keys = await fixture.keys('tolerated/');
  assert.ok(keys.includes('tolerated/publication.json'), keys.join(', '));
  assert.equal(JSON.parse(await readFile(join(work, 'last-upload.json'), 'utf8')).kind, 'upload');
});

test('pipeline.sh --log in a directory that does not exist: exit 2, nothing started', async () => {
  const work = join(fixture.temp.path, 'nolog');
  await mkdir(work, { recursive: true });
  const result = await runCommand('bash', pipelineArgs(work, 'nolog/', ['--log', join(fixture.temp.path, 'no-such-dir', 'p.log')]), {
    env: fixture.env,
  });
  assert.equal(result.code, 2, result.stderr);
  assert.match(result.stderr, /--log .*no-such-dir\/p\.log: directory .* does not exist/);
  assert.deepEqual(await readdir(work), []);
  assert.deepEqual(await fixture.keys('nolog/'), []);
});
