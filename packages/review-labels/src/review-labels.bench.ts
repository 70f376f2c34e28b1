// Benchmark: review-labels at 1%, 5% and 10% flipped labels on generated photos-of-colour (3 classes, PNG files
// through the real prep-data, train and eval-model bins and a tiny ONNX backbone): precision and recall on the
// flipped images, the seconds of a review once the features are cached, and the test accuracy of a model trained
// after applying the suggested decisions (relabel what is flagged as mislabelled, drop outliers and test/val
// near-duplicates) versus before, both against the dataset's labels (what eval-model reports) and against the
// true classes of the test images both models saw. Two difficulties: colours far apart (contrast 1) and pulled
// towards grey so that classes overlap (contrast 0.1). Writes bench-results/review-labels.json.
//   node --conditions=imgpipe-source --import tsx packages/review-labels/src/review-labels.bench.ts [--images 600]
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { execa } from 'execa';
import { csvString, LABEL_DECISION_COLUMNS, readCsvFile, type CsvRow } from '@imgpipe/kit';
import { makeTempDir, writeBenchResults, type BenchResult } from '@imgpipe/test-utils';
import { ISSUES_FILE } from './issue-files.js';
import { runReviewLabels } from './review-labels.js';
import { noisyBackbone, NOISY_SIZE, writeNoisyImageSet } from './test-noisy-dataset.js';
import { BIN_ENV, EVAL_BIN, TRAIN_BIN, trainArgs } from './test-run.js';

const { values } = parseArgs({
  options: {
    images: { type: 'string', default: '600' },
    folds: { type: 'string', default: '5' },
    noise: { type: 'string', default: '0.01,0.05,0.1' },
    // 1: classes far apart (the head learns them despite the flips); below 1 they overlap and the flips cost accuracy.
    contrast: { type: 'string', default: '1,0.1' },
  },
});
const IMAGES = Number(values.images);
const FOLDS = Number(values.folds);
const CLASSES = ['red', 'green', 'blue'];
const PREP_BIN = fileURLToPath(new URL('../../prep-data/bin/prep-data.js', import.meta.url));

async function rowsOf(path: string): Promise<CsvRow[]> {
  const { records } = await readCsvFile(path);
  const rows: CsvRow[] = [];
  for await (const record of records) rows.push(record.row!);
  return rows;
}

const node = (args: string[]) => execa(process.execPath, args, { env: BIN_ENV });

/** prep-data, train, eval-model; test accuracy as eval-model measures it and against the true classes. */
async function pipeline(dir: string, csvPath: string, backbone: string[], truth: Map<string, number>, decisions?: string) {
  // Splits by a hash of each image's key: dropping images leaves every other image in its split, so the test
  // images before and after the decisions can be compared one for one.
  const prep = await node([
    PREP_BIN,
    '--csv',
    csvPath,
    '--out',
    join(dir, 'prep'),
    '--img-dimensions',
    String(NOISY_SIZE),
    '--split-by',
    'hash',
    '-q',
    ...(decisions ? ['--decisions', decisions] : []),
  ]);
  const train = await node([TRAIN_BIN, ...trainArgs(JSON.parse(prep.stdout).path, backbone, join(dir, 'cache'), join(dir, 'runs'))]);
  const runDir = JSON.parse(train.stdout).path as string;
  const evaluated = JSON.parse((await node([EVAL_BIN, '--run', runDir, '--device', 'wasm', '-q'])).stdout);
  const predictions = await rowsOf(join(runDir, 'predictions.csv'));
  const rightClass = new Map(predictions.map((p) => [p.source!, Number(p.predicted) === truth.get(p.source!)]));
  return { runDir, testAccuracy: evaluated.test_accuracy as number, rightClass, testImages: predictions.length };
}

/** Accuracy against the true classes on the test images both models were evaluated on. */
function trueAccuracy(mine: Map<string, boolean>, other: Map<string, boolean>): number {
  const common = [...mine.keys()].filter((source) => other.has(source));
  return common.filter((source) => mine.get(source)).length / common.length;
}

const temp = await makeTempDir('imgpipe-review-labels-bench-');
const results: BenchResult[] = [];
try {
  for (const [noise, contrast] of String(values.noise)
    .split(',')
    .map(Number)
    .flatMap((n) =>
      String(values.contrast)
        .split(',')
        .map((c) => [n, Number(c)] as const),
    )) {
    const dir = join(temp.path, `noise-${noise}-contrast-${contrast}`);
    const set = await writeNoisyImageSet({ dir: join(dir, 'images'), count: IMAGES, classes: CLASSES, noise, contrast, seed: 21 });
    const sourceOf = (s3: string) => `s3://review/${s3}`;
    const truth = new Map(set.rows.map((r) => [sourceOf(r.s3_image), r.truth]));
    const flipped = new Set(set.rows.filter((r) => r.label !== r.truth).map((r) => sourceOf(r.s3_image)));
    const backbone = await noisyBackbone(join(dir, 'backbone'));
    const before = await pipeline(join(dir, 'before'), set.csvPath, backbone, truth);

    const review = () =>
      runReviewLabels({ runDir: before.runDir, device: 'wasm', batchSize: 32, cacheDir: join(dir, 'before', 'cache'), folds: FOLDS });
    const first = await review();
    const cached = await review();
    const issues = await rowsOf(join(before.runDir, ISSUES_FILE));
    const mislabelled = issues.filter((row) => row.kind!.split(';').includes('mislabelled'));
    const hits = mislabelled.filter((row) => flipped.has(row.image!)).length;
    const precision = mislabelled.length ? hits / mislabelled.length : 1;
    const recall = flipped.size ? hits / flipped.size : 1;

    // The suggested decisions, accepted as they are.
    const decisions = issues.map((row) => ({
      sha256: row.sha256,
      action: row.suggested_label ? 'relabel' : 'drop',
      label: row.suggested_label ?? '',
      source: row.image,
      split: row.split,
      given_label: row.given_label,
    }));
    const decisionsPath = join(dir, 'label-decisions.csv');
    await writeFile(decisionsPath, await csvString(LABEL_DECISION_COLUMNS, decisions));
    const after = await pipeline(join(dir, 'after'), set.csvPath, backbone, truth, decisionsPath);

    const params = {
      noise,
      contrast,
      images: IMAGES,
      flipped: flipped.size,
      flagged: mislabelled.length,
      folds: FOLDS,
      classes: CLASSES.length,
      image_size: NOISY_SIZE,
      backbone: 'tiny-conv-onnx-16',
      device: 'wasm',
      test_images_before: before.testImages,
      test_images_after: after.testImages,
    };
    results.push(
      { name: `precision at ${noise * 100}% noise, contrast ${contrast}`, unit: 'ratio', value: precision, params },
      { name: `recall at ${noise * 100}% noise, contrast ${contrast}`, unit: 'ratio', value: recall, params },
      { name: `estimated noise rate at ${noise * 100}% noise, contrast ${contrast}`, unit: 'ratio', value: cached.noiseRate, params },
      {
        name: `review seconds, features cached, at ${noise * 100}% noise, contrast ${contrast}`,
        unit: 's',
        value: cached.seconds,
        params: { ...params, first_run_seconds: first.seconds, first_run_from_cache: first.featuresFromCache },
      },
      { name: `test accuracy before decisions at ${noise * 100}% noise, contrast ${contrast}`, unit: 'ratio', value: before.testAccuracy, params },
      { name: `test accuracy after decisions at ${noise * 100}% noise, contrast ${contrast}`, unit: 'ratio', value: after.testAccuracy, params },
      {
        name: `true-class test accuracy before decisions at ${noise * 100}% noise, contrast ${contrast}`,
        unit: 'ratio',
        value: trueAccuracy(before.rightClass, after.rightClass),
        params,
      },
      {
        name: `true-class test accuracy after decisions at ${noise * 100}% noise, contrast ${contrast}`,
        unit: 'ratio',
        value: trueAccuracy(after.rightClass, before.rightClass),
        params,
      },
    );
  }
  await writeBenchResults('review-labels', results);
} finally {
  await temp.remove();
}
