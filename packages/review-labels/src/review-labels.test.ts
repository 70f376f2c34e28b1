import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { execa } from 'execa';
import { loadTf } from '@imgpipe/engines';
import { acquireLock, EXIT_LOCKED, exists, readCsvFile, type ProgressEvent } from '@imgpipe/kit';
import { makeTempDir, type TempDir } from '@imgpipe/test-utils';
import { ISSUES_FILE, REVIEW_PAGE_FILE } from './issue-files.js';
import { runReviewLabels, type ReviewLabelsResult } from './review-labels.js';
import { noisyBackbone, writeNoisyDataset, type NoisyDataset } from './test-noisy-dataset.js';
import { BIN_ENV, EVAL_BIN, noisyRun, REVIEW_BIN, TRAIN_BIN, trainArgs } from './test-run.js';

const COUNTS = { train: 420, val: 90, test: 90 };
let temp: TempDir;

before(async () => {
  temp = await makeTempDir('imgpipe-review-labels-');
});
after(() => temp.remove());

describe('review-labels on a run whose dataset has 5% of its labels flipped, 4 outliers and 3 copies across splits', () => {
  let data: NoisyDataset;
  let runDir: string;
  let result: ReviewLabelsResult;
  const events: ProgressEvent[] = [];

  before(async () => {
    ({ data, runDir } = await noisyRun(join(temp.path, 'noisy'), { counts: COUNTS, noise: 0.05, outliers: 4, duplicates: 3 }));
    result = await runReviewLabels({
      runDir,
      device: 'wasm',
      batchSize: 32,
      cacheDir: join(temp.path, 'noisy', 'cache'),
      onProgress: (event) => events.push(event),
    });
  });

  it('reports progress for each phase: never decreasing, ending done at its total', () => {
    const labels = [...new Set(events.map((e) => e.label))];
    assert.deepEqual(labels, ['features test', 'heads', 'neighbours'], 'train and val features come from the cache train filled');
    for (const label of labels) {
      const mine = events.filter((e) => e.label === label);
      for (let i = 1; i < mine.length; i++) assert.ok(mine[i]!.done >= mine[i - 1]!.done, `${label} never decreases`);
      assert.equal(mine.at(-1)!.status, 'done');
      assert.equal(mine.at(-1)!.done, mine.at(-1)!.total);
    }
  });

  it('finds the flipped labels with precision and recall of at least 0.8, suggesting the true class', () => {
    const flagged = result.issues.filter((issue) => issue.kinds.includes('mislabelled'));
    const hits = flagged.filter((issue) => data.flipped.has(issue.row));
    const precision = hits.length / flagged.length;
    const recall = hits.length / data.flipped.size;
    assert.equal(data.flipped.size, 30);
    assert.ok(precision >= 0.8, `precision ${precision} (${hits.length} of ${flagged.length})`);
    assert.ok(recall >= 0.8, `recall ${recall} (${hits.length} of ${data.flipped.size})`);
    for (const issue of hits) assert.equal(issue.suggested, data.trueLabels[issue.row], `row ${issue.row}`);
    assert.ok(result.noiseRate > 0.03 && result.noiseRate < 0.08, `estimated noise ${result.noiseRate}`);
  });

  it('ranks the planted outliers in the top 5% of the outlier list', () => {
    const ranking = Array.from(result.outlierScore.keys()).sort((a, b) => result.outlierScore[b]! - result.outlierScore[a]!);
    const cut = Math.ceil(0.05 * ranking.length);
    for (const row of data.outliers) assert.ok(ranking.indexOf(row) < cut, `outlier ${row} ranks ${ranking.indexOf(row)} of ${ranking.length}`);
  });

  it('finds the test images that copy training images', () => {
    const found = new Set(result.issues.filter((issue) => issue.kinds.includes('near-duplicate')).map((issue) => issue.row));
    assert.equal(data.duplicates.size, 3);
    for (const row of data.duplicates) assert.ok(found.has(row), `copy at row ${row} not found`);
    assert.ok(found.size <= 3 + 0.01 * result.pooled.length, `${found.size} near-duplicates`);
  });

  it('writes label-issues.csv most suspicious first, with the out-of-sample probabilities, and the page', async () => {
    const { columns, records } = await readCsvFile(join(runDir, ISSUES_FILE));
    assert.deepEqual(columns, [
      'rank',
      'image',
      'split',
      'index',
      'sha256',
      'given_label',
      'suggested_label',
      'kind',
      'score',
      'p_red',
      'p_green',
      'p_blue',
      'duplicate_of',
      'why',
    ]);
    const rows = [];
    for await (const record of records) rows.push(record.row!);
    assert.equal(rows.length, result.issues.length);
    rows.forEach((row, i) => {
      const issue = result.issues[i]!;
      const pooled = result.pooled[issue.row]!;
      assert.equal(Number(row.rank), i + 1);
      assert.equal(row.image, pooled.row.source);
      assert.equal(row.split, pooled.split);
      assert.equal(row.kind, issue.kinds.join(';'));
      const p = [row.p_red, row.p_green, row.p_blue].map(Number);
      assert.ok(Math.abs(p.reduce((a, b) => a + b, 0) - 1) < 1e-3);
      if (issue.kinds[0] === 'mislabelled') assert.ok(Math.abs(Number(row.score) - (1 - p[pooled.row.label]!)) < 1e-4);
    });
    for (let i = 1; i < result.issues.length; i++) assert.ok(result.issues[i - 1]!.suspicion >= result.issues[i]!.suspicion);
    const page = await readFile(join(runDir, REVIEW_PAGE_FILE), 'utf8');
    assert.equal(page.match(/<article class="issue"/g)?.length, result.issues.length);
    assert.equal(result.pointer.kind, 'label-review');
  });
});

it('a clean dataset flags (almost) nothing', async () => {
  const { runDir, cacheDir } = await noisyRun(join(temp.path, 'clean'), { counts: COUNTS, noise: 0, seed: 12 });
  const { tf } = await loadTf('wasm');
  const tensors = tf.memory().numTensors;
  const result = await runReviewLabels({ runDir, device: 'wasm', batchSize: 32, cacheDir });
  assert.equal(tf.memory().numTensors, tensors, 'every tensor is disposed');
  assert.ok(result.counts.mislabelled <= 2, `${result.counts.mislabelled} flagged as mislabelled`);
  assert.ok(result.issues.length <= 0.01 * result.pooled.length, `${result.issues.length} issues: ${JSON.stringify(result.counts)}`);
  assert.ok(result.noiseRate < 0.01);
});

it('the pipe train | review-labels | eval-model works, on the features train cached', async () => {
  const dir = join(temp.path, 'pipe');
  const data = await writeNoisyDataset({ dir: join(dir, 'data'), counts: { train: 150, val: 30, test: 30 }, noise: 0.05, seed: 4 });
  const backbone = await noisyBackbone(join(dir, 'backbone'));
  const cacheDir = join(dir, 'cache');
  const review = await execa(process.execPath, [TRAIN_BIN, ...trainArgs(data.dir, backbone, cacheDir, join(dir, 'runs'))], { env: BIN_ENV }).pipe(
    process.execPath,
    [REVIEW_BIN, '--cache-dir', cacheDir, '--device', 'wasm', '--folds', '3'],
    { env: BIN_ENV, reject: false },
  );
  assert.equal(review.exitCode, 0, review.stderr);
  const lines = review.stdout.trim().split('\n');
  assert.equal(lines.length, 1);
  const pointer = JSON.parse(lines[0]!);
  assert.equal(pointer.kind, 'label-review');
  assert.equal(pointer.images, 210);
  assert.ok(await exists(pointer.issues));
  assert.ok(await exists(pointer.page));
  assert.match(review.stderr, /features train: 150 x 16 from cache/);
  assert.match(review.stderr, /features val: 30 x 16 from cache/);
  assert.match(review.stderr, /likely mislabelled, .* outliers, .* near-duplicates across splits; estimated label noise/);
  assert.equal(pointer.best, join(pointer.path, 'model'));
  // The label-review pointer names the run, so the pipe goes on.
  const evaluated = await execa(process.execPath, [EVAL_BIN, '--device', 'wasm', '-q'], { input: review.stdout, env: BIN_ENV, reject: false });
  assert.equal(evaluated.exitCode, 0, evaluated.stderr);
  assert.equal(JSON.parse(evaluated.stdout).path, pointer.path);
});

it('waits for nobody: a run locked by another tool is exit 75 and nothing is written', async () => {
  const { runDir, cacheDir } = await noisyRun(join(temp.path, 'locked'), { counts: { train: 60, val: 20, test: 20 }, noise: 0, seed: 5 });
  const lock = await acquireLock(runDir, { what: 'run directory', flag: '--run' });
  try {
    const locked = await execa(process.execPath, [REVIEW_BIN, '--run', runDir, '--cache-dir', cacheDir, '--device', 'wasm'], {
      env: BIN_ENV,
      reject: false,
    });
    assert.equal(locked.exitCode, EXIT_LOCKED, locked.stderr);
    assert.equal(await exists(join(runDir, ISSUES_FILE)), false);
  } finally {
    await lock.release();
  }
  const notRun = await execa(process.execPath, [REVIEW_BIN, '--run', temp.path], { env: BIN_ENV, reject: false });
  assert.equal(notRun.exitCode, 2);
  assert.match(notRun.stderr, /run\.json not found/);
  assert.equal(notRun.stdout, '');

  // A dataset rebuilt since the run: an input error unless --data says to review it anyway.
  const runJson = join(runDir, 'run.json');
  const run = JSON.parse(await readFile(runJson, 'utf8'));
  await writeFile(runJson, JSON.stringify({ ...run, dataset: { ...run.dataset, manifest_sha256: '0'.repeat(64) } }));
  const rebuilt = await execa(process.execPath, [REVIEW_BIN, '--run', runDir, '--cache-dir', cacheDir, '--device', 'wasm'], {
    env: BIN_ENV,
    reject: false,
  });
  assert.equal(rebuilt.exitCode, 2);
  assert.match(rebuilt.stderr, /manifest\.json is not the dataset .*run\.json was trained on .*pass --data DIR/);
  const anyway = await execa(
    process.execPath,
    [REVIEW_BIN, '--run', runDir, '--data', run.dataset.path, '--cache-dir', cacheDir, '--device', 'wasm'],
    { env: BIN_ENV, reject: false },
  );
  assert.equal(anyway.exitCode, 0, anyway.stderr);
  assert.match(anyway.stderr, /warn: .*reviewing it with this run's backbone and hyper-parameters/);
});
