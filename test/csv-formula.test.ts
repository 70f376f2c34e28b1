// Spreadsheet formula injection (issue 24): a class named like a formula goes through prep-data, train and the
// real eval-model bin; the CSVs meant for people hold it quoted, the data files hold it as given.
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { after, before, test } from 'node:test';
import { execa } from 'execa';
import { openDataset, readCsvRows, type CsvRow } from '@imgpipe/kit';
import { runPrepData } from '@imgpipe/prep-data';
import { runTrain } from '@imgpipe/train';
import { buildTinyConvBackbone, generateImageSet, makeTempDir, TINY_IMAGE_SIZES, type TempDir } from '@imgpipe/test-utils';

// The real bin (bin/eval-model.js -> dist/main.js): run `npx tsc -b` before the tests.
const BIN = fileURLToPath(new URL('../packages/eval/bin/eval-model.js', import.meta.url));
const FORMULA = '=HYPERLINK("http://x","y")';
const CLASSES = [FORMULA, '@dog'];
const SIZE = 16;

let temp: TempDir;
let dataDir: string;
let runDir: string;

const rowsOf = async (path: string, options: { forSpreadsheets?: boolean } = {}): Promise<CsvRow[]> =>
  (await readCsvRows(Readable.from([await readFile(path)]), { source: path, ...options })).rows;
/** Cells a spreadsheet would run as a formula (plain numbers such as -0.5 are data, not formulas). */
const formulaCells = (rows: CsvRow[]) =>
  rows.flatMap((row) => Object.values(row)).filter((cell) => /^[=+\-@\t\r]/.test(cell) && Number.isNaN(Number(cell)));

before(async () => {
  temp = await makeTempDir('imgpipe-csv-formula-');
  const set = await generateImageSet({ dir: join(temp.path, 'images'), count: 32, seed: 5, sizes: TINY_IMAGE_SIZES, classes: CLASSES, bad: true });
  dataDir = join(temp.path, 'prep');
  await runPrepData({
    csv: await readFile(set.csvPath),
    csvSource: set.csvPath,
    out: dataDir,
    size: SIZE,
    fractions: { train: 0.5, val: 0.25, test: 0.25 },
    seed: 3,
    quiet: true,
    concurrency: 2,
  });
  const tiny = await buildTinyConvBackbone({ dir: join(temp.path, 'backbone'), inputSize: SIZE, format: 'onnx', seed: 1 });
  const trained = await runTrain({
    dataDir,
    out: join(temp.path, 'runs'),
    backbone: tiny.path,
    featureLayer: tiny.featureLayer,
    preprocess: 'torch',
    cacheDir: join(temp.path, 'cache'),
    space: { lr: [0.05], layer_size: [4], dropout: [0], batch_size: [16], epochs: [1] },
    strategy: 'grid',
    runs: 0,
    seed: 1,
    device: 'wasm',
    extractBatchSize: 32,
  });
  runDir = trained.runDir;
});
after(() => temp.remove());

test('a class named like a spreadsheet formula is quoted in the CSVs for people and kept as given in the data files', async () => {
  const evaluated = await execa('node', [BIN, '--run', runDir, '--device', 'wasm'], { cwd: temp.path, reject: false });
  assert.equal(evaluated.exitCode, 0, evaluated.stderr);

  // Data files imgpipe reads back: the dataset's classes and split CSVs hold the name exactly.
  const dataset = await openDataset(dataDir);
  assert.deepEqual(dataset.manifest.classes, CLASSES);
  const split = await rowsOf(join(dataDir, 'test.csv'));
  assert.ok(
    split.some((row) => row.category === FORMULA),
    'test.csv holds the class as given',
  );

  // Files for people: no cell a spreadsheet would run, and the class is there behind a single quote.
  const predictions = await rowsOf(join(runDir, 'predictions.csv'));
  assert.deepEqual(formulaCells(predictions), []);
  assert.ok(
    predictions.some((row) => row.category === `'${FORMULA}`),
    'predictions.csv: the category is quoted',
  );
  assert.ok(predictions.every((row) => row.category === `'${FORMULA}` || row.category === "'@dog"));
  const rejected = await rowsOf(join(dataDir, 'rejected.csv'));
  assert.ok(rejected.length > 0, 'the bad images are listed');
  assert.deepEqual(formulaCells(rejected), []);
  assert.ok(rejected.some((row) => row.category === `'${FORMULA}`));
  for (const name of ['results.csv', 'trials.csv']) assert.deepEqual(formulaCells(await rowsOf(join(runDir, name))), [], name);

  // Read back as imgpipe reads them (forSpreadsheets), they give the original values: eval-model's own
  // update of results.csv (test metrics added) kept every other cell.
  assert.ok((await rowsOf(join(runDir, 'predictions.csv'), { forSpreadsheets: true })).some((row) => row.category === FORMULA));
  const results = await rowsOf(join(runDir, 'results.csv'), { forSpreadsheets: true });
  assert.match(results[0]!.test_accuracy!, /^[\d.]+$/);
});
