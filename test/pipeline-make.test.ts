// The Makefile's stage targets with the real bins (run `npx tsc -b` first) against the local S3 server: `make all`
// runs download -> prep -> train -> evaluate -> upload; a second `make all` does no work; a stage reruns only when
// the content of its inputs or its options change, and then only it and the stages after it.
import assert from 'node:assert/strict';
import { readdir, stat, utimes } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { BIN, BUCKET, CSV_URI, REPO, runCommand, SIZE, startPipelineFixture, type PipelineFixture } from './pipeline-fixture.js';

let fixture: PipelineFixture;
let work: string;
before(async () => {
  fixture = await startPipelineFixture('pipeline-make', 48);
  work = join(fixture.temp.path, 'work');
});
after(() => fixture?.close());

const TOOLS = ['download-s3', 'prep-data', 'train', 'eval-model', 'upload-s3'] as const;
const OUTPUTS = ['images.csv', 'prep.json', 'run.json', 'eval.json', 'upload.json'];

async function make(vars: Record<string, string> = {}) {
  const base = {
    WORK: work,
    CSV: CSV_URI,
    BUCKET,
    PREFIX: 'made/',
    IMG: String(SIZE),
    BACKBONE: fixture.backbone.path,
    FEATURE_LAYER: fixture.backbone.featureLayer,
    DEVICE: 'wasm',
    TRAIN_FLAGS: '--lr 0.01,0.05 --layer-size 8,16 --epochs 8 --batch-size 8',
    MIN_ACCURACY: '0.75',
    SKIP_BUILD: '1',
  };
  const result = await runCommand('make', ['-C', REPO, '--no-print-directory', 'all', ...Object.entries({ ...base, ...vars }).map(([k, v]) => `${k}=${v}`)], { env: fixture.env });
  assert.equal(result.code, 0, `${result.stdout}\n${result.stderr}`);
  // make echoes each recipe it runs on stdout: the tools it started.
  const ran = TOOLS.filter((tool) => result.stdout.includes(`${BIN}/${tool} `) || result.stdout.includes(`node_modules/.bin/${tool} `));
  return { ...result, ran };
}

const mtimes = async () => Promise.all(OUTPUTS.map(async (file) => (await stat(join(work, file))).mtimeMs));

test('make all runs every stage once; a second make all does no work', async () => {
  const first = await make();
  assert.deepEqual(first.ran, [...TOOLS]);
  const keys = await fixture.keys('made/');
  // A publication: the manifest, and the run's files under made/p/<id>/.
  assert.ok(keys.includes('made/publication.json'), keys.join(', '));
  assert.ok(['model/card.json', 'results.csv'].every((name) => keys.some((key) => new RegExp(`^made/p/[^/]+/${name}$`).test(key))), keys.join(', '));
  const before = await mtimes();

  const second = await make();
  assert.deepEqual(second.ran, []);
  assert.equal(second.stderr.trim(), '', 'the stamps changed on an unchanged rerun');
  assert.deepEqual(await mtimes(), before);
  assert.equal((await readdir(join(work, 'runs'))).length, 1);
});

test('a stage reruns when its inputs\' content or its options change, with the stages after it and no others', async () => {
  // Touching a stage's input without changing its content is not a change.
  const later = new Date(Date.now() + 5000);
  await utimes(join(work, 'images.csv'), later, later);
  assert.deepEqual((await make()).ran, []);

  // A new gate: eval reruns; it gives the same evaluation, so there is nothing new to upload; no retraining.
  const gate = await make({ MIN_ACCURACY: '0.7' });
  assert.deepEqual(gate.ran, ['eval-model']);
  assert.match(gate.stderr, /stage eval: options changed/);
  assert.equal((await readdir(join(work, 'runs'))).length, 1);

  // New train options: train, eval and upload rerun (a new run directory); download and prep do not.
  const retrain = await make({ MIN_ACCURACY: '0.7', TRAIN_FLAGS: '--lr 0.01,0.05 --layer-size 8,16 --epochs 9 --batch-size 8' });
  assert.deepEqual(retrain.ran, ['train', 'eval-model', 'upload-s3']);
  assert.equal((await readdir(join(work, 'runs'))).length, 2);
  assert.deepEqual((await make({ MIN_ACCURACY: '0.7', TRAIN_FLAGS: '--lr 0.01,0.05 --layer-size 8,16 --epochs 9 --batch-size 8' })).ran, []);
});
