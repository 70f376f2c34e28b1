// The whole chain through real shell pipes, with the real bins (run `npx tsc -b` first), against the local S3
// server on generated images: download-s3 | prep-data | train | eval-model --min-accuracy | upload-s3. The
// assertions read what landed in the bucket.
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { BIN, BUCKET, CSV_URI, parseSimpleCsv, runCommand, startPipelineFixture, type PipelineFixture } from './pipeline-fixture.js';

let fixture: PipelineFixture;
before(async () => {
  fixture = await startPipelineFixture('pipeline', 64);
});
after(() => fixture?.close());

test('download-s3 | prep-data | train | eval-model | upload-s3 in bash publishes the evaluated model and its results', async () => {
  const work = join(fixture.temp.path, 'work');
  const script = [
    `set -euo pipefail; "$B/download-s3" --csv ${CSV_URI} --dest "$W/data"`,
    ` | "$B/prep-data" --out "$W/prep" --train-pct 0.5 --val-pct 0.25 --test-pct 0.25`,
    ` | "$B/train" --out "$W/runs" ${fixture.trainFlags.map((flag) => `'${flag}'`).join(' ')}`,
    ' | "$B/eval-model" --min-accuracy 0.75',
    ` | "$B/upload-s3" --bucket ${BUCKET} --prefix results/`,
  ].join(' \\\n');
  const result = await runCommand('bash', ['-c', script], { env: { ...fixture.env, B: BIN, W: work } });
  assert.equal(result.code, 0, result.stderr);

  // One pointer line on stdout: upload-s3's.
  const lines = result.stdout.trim().split('\n');
  assert.equal(lines.length, 1, result.stdout);
  const pointer = JSON.parse(lines[0]!) as { kind: string; uri: string; path: string; model: string; results: string; id: string; manifest: string };
  assert.equal(pointer.kind, 'upload');
  assert.equal(pointer.uri, `s3://${BUCKET}/results/`);
  assert.equal(pointer.manifest, `s3://${BUCKET}/results/publication.json`);
  // The publication's objects live under results/p/<id>/, listed by results/publication.json (written last).
  const root = `results/p/${pointer.id}/`;
  assert.equal(pointer.model, `s3://${BUCKET}/${root}model/`);

  // The bucket holds the run's results, the model directory and the loader snippet, all listed in the manifest.
  const keys = await fixture.keys('results/');
  const manifest = JSON.parse(await fixture.read('results/publication.json')) as { objects: { key: string }[] };
  assert.deepEqual(keys.sort(), ['results/publication.json', ...manifest.objects.map((o) => `results/${o.key}`)].sort());
  for (const key of [
    'results.csv',
    'eval.json',
    'report.html',
    'load_model.mjs',
    'model/card.json',
    'model/head/model.json',
    'model/head/weights.bin',
    'model/backbone/model.onnx',
  ]) {
    assert.ok(keys.includes(root + key), `${root}${key} missing from ${keys.join(', ')}`);
  }
  // Every file of the run's model directory went up byte for byte.
  const runDir = pointer.path;
  for (const key of ['model/card.json', 'model/head/model.json']) {
    assert.equal(await fixture.read(root + key), await readFile(join(runDir, key), 'utf8'), key);
  }
  // results.csv in the bucket: one row per trial of the 2x2 sweep, with the test accuracy eval-model measured on
  // the best model, which the gate let through.
  const evaluation = JSON.parse(await fixture.read(`${root}eval.json`)) as { test_accuracy: number; count: number };
  assert.ok(evaluation.test_accuracy >= 0.75, `test accuracy ${evaluation.test_accuracy}`);
  assert.equal(evaluation.count, 16);
  const rows = parseSimpleCsv(await fixture.read(`${root}results.csv`));
  assert.equal(rows.length, 4);
  const card = JSON.parse(await fixture.read(`${root}model/card.json`)) as { labels: string[]; metrics: Record<string, number> };
  assert.deepEqual(card.labels, ['cat', 'dog']);
  assert.equal(card.metrics.test_accuracy, evaluation.test_accuracy);
  assert.ok(
    rows.some((row) => Number(row.test_accuracy) === evaluation.test_accuracy),
    JSON.stringify(rows),
  );
  // The images came from the bucket through download-s3 (its local_image column led prep-data to them).
  const prepRows = parseSimpleCsv(await readFile(join(work, 'prep', 'test.csv'), 'utf8'));
  assert.equal(prepRows.length, 16);
  assert.ok(
    prepRows.every((row) => row.local_image!.startsWith(join(work, 'data'))),
    JSON.stringify(prepRows[0]),
  );
});
