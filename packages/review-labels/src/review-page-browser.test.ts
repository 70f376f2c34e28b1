// The review page in a real browser: Debian's chromium (IMGPIPE_CHROMIUM, default /usr/bin/chromium) driven by
// playwright-core, opened from the file, reviewed with the keyboard only; the exported decisions then go through
// the real prep-data bin. Page-side code is written as strings: the tests are typechecked without the DOM library.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, it } from 'node:test';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { execa } from 'execa';
import { chromium, type Browser } from 'playwright-core';
import { openDataset, readCsvFile, sha256, SPLIT_NAMES, type CsvRow, type DatasetRow } from '@imgpipe/kit';
import { makeTempDir, type TempDir } from '@imgpipe/test-utils';
import { ISSUES_FILE, REVIEW_PAGE_FILE } from './issue-files.js';
import { noisyBackbone, NOISY_SIZE, writeNoisyImageSet, type NoisyImageSet } from './test-noisy-dataset.js';
import { BIN_ENV, REVIEW_BIN, TRAIN_BIN, trainArgs } from './test-run.js';

const CHROMIUM = process.env.IMGPIPE_CHROMIUM ?? '/usr/bin/chromium';
const PREP_BIN = fileURLToPath(new URL('../../prep-data/bin/prep-data.js', import.meta.url));
const CLASSES = ['cat', '<i>dog</i> & "co"'];
const HOSTILE_KEY = 'images/<img src=x onerror="window.injected=1">.png';

let temp: TempDir;
let browser: Browser;
let set: NoisyImageSet;
let runDir: string;

async function rowsOf(path: string): Promise<CsvRow[]> {
  const { records } = await readCsvFile(path);
  const rows: CsvRow[] = [];
  for await (const record of records) rows.push(record.row!);
  return rows;
}

before(async () => {
  assert.ok(existsSync(CHROMIUM), `no browser at ${CHROMIUM}: apt-get install chromium (or set IMGPIPE_CHROMIUM)`);
  temp = await makeTempDir('imgpipe-review-page-');
  set = await writeNoisyImageSet({
    dir: join(temp.path, 'images'),
    count: 120,
    classes: CLASSES,
    noise: 0.1,
    name: (i) => (i % 3 === 0 ? HOSTILE_KEY.replace('.png', `-${i}.png`) : `images/image-${i}.png`),
  });
  const prep = await execa(
    process.execPath,
    [PREP_BIN, '--csv', set.csvPath, '--out', join(temp.path, 'prep'), '--img-dimensions', String(NOISY_SIZE), '-q'],
    { env: BIN_ENV },
  );
  const data = JSON.parse(prep.stdout).path;
  const cacheDir = join(temp.path, 'cache');
  const train = await execa(
    process.execPath,
    [TRAIN_BIN, ...trainArgs(data, await noisyBackbone(join(temp.path, 'backbone')), cacheDir, join(temp.path, 'runs'))],
    { env: BIN_ENV },
  );
  runDir = JSON.parse(train.stdout).path;
  await execa(process.execPath, [REVIEW_BIN, '--run', runDir, '--cache-dir', cacheDir, '--device', 'wasm', '-q'], { env: BIN_ENV });
  browser = await chromium.launch({ executablePath: CHROMIUM, headless: true });
});

after(async () => {
  await browser?.close();
  await temp?.remove();
});

it('keyboard-only review of three issues, export, and prep-data --decisions builds the dataset they describe', async () => {
  const issues = await rowsOf(join(runDir, ISSUES_FILE));
  assert.ok(issues.length >= 3, `${issues.length} issues`);
  const first = issues[0]!;
  // Relabel #1 to the suggestion (r), or where it has none (an outlier, a duplicate) to the other class by its number.
  const other = CLASSES.find((name) => name !== first.given_label)!;
  const target = first.suggested_label || other;
  const relabelKey = first.suggested_label ? 'r' : String(CLASSES.indexOf(other) + 1);
  assert.ok(
    issues.some((row) => row.kind?.includes('mislabelled') && row.suggested_label),
    'some issue suggests a label',
  );

  const context = await browser.newContext({ acceptDownloads: true });
  const page = await context.newPage();
  const console: string[] = [];
  page.on('console', (message) => console.push(`${message.type()}: ${message.text()}`));
  page.on('pageerror', (error) => console.push(`pageerror: ${error.message}`));
  await page.addInitScript({
    content: `window.cspViolations = [];
      document.addEventListener('securitypolicyviolation', (e) => window.cspViolations.push(e.effectiveDirective + ' ' + e.blockedURI));`,
  });
  await page.goto(pathToFileURL(join(runDir, REVIEW_PAGE_FILE)).href);

  // Labels and file names holding HTML are shown as text, never parsed.
  assert.equal(await page.evaluate('window.injected'), undefined);
  assert.equal(await page.locator('img').count(), await page.locator('.issue').count(), 'only the thumbnails are images');
  const sources = await page.locator('.issue .source').allTextContents();
  assert.deepEqual(
    sources,
    issues.slice(0, sources.length).map((row) => row.image),
  );
  assert.ok(
    sources.some((s) => s.includes('<img src=x')),
    'a hostile file name is on the page, as text',
  );
  assert.ok((await page.locator('.issue').first().textContent())!.includes(first.given_label!));
  assert.ok((await page.locator('text=<i>dog</i> & "co"').count()) > 0, 'the class name with HTML is shown as text');
  assert.equal(await page.locator('i').count(), 0);

  // #1 relabel, #2 drop (d), skip #3 (j), #4 keep (c); k back to #3 and drop it instead.
  await page.keyboard.press(relabelKey);
  await page.keyboard.press('d');
  await page.keyboard.press('j');
  await page.keyboard.press('c');
  await page.keyboard.press('k');
  await page.keyboard.press('k');
  await page.keyboard.press('d');
  assert.deepEqual((await page.locator('.issue .decision').allTextContents()).slice(0, 4), [`relabel to ${target}`, 'drop', 'drop', 'keep']);
  assert.match((await page.locator('#status').textContent())!, /^4 of \d+ decided$/);
  const [download] = await Promise.all([page.waitForEvent('download'), page.keyboard.press('e')]);
  assert.equal(download.suggestedFilename(), 'label-decisions.csv');
  const decisionsPath = join(temp.path, 'label-decisions.csv');
  await download.saveAs(decisionsPath);
  assert.deepEqual(await page.evaluate('window.cspViolations'), []);
  assert.deepEqual(console, []);
  await context.close();

  const decisions = await rowsOf(decisionsPath);
  assert.deepEqual(
    decisions.map((d) => [d.source, d.action, d.sha256]),
    [
      [issues[0]!.image, 'relabel', issues[0]!.sha256],
      [issues[1]!.image, 'drop', issues[1]!.sha256],
      [issues[2]!.image, 'drop', issues[2]!.sha256],
      [issues[3]!.image, 'keep', issues[3]!.sha256],
    ],
  );
  assert.equal(decisions[0]!.label, target);
  const local = new Map(set.rows.map((r) => [`s3://review/${r.s3_image}`, r.local_image]));
  for (const d of decisions) assert.equal(d.sha256, sha256(await readFile(local.get(d.source!)!)), `${d.source}: the sha256 is the image file's`);

  const out = join(temp.path, 'prep-reviewed');
  const applied = await execa(
    process.execPath,
    [PREP_BIN, '--csv', set.csvPath, '--decisions', decisionsPath, '--out', out, '--img-dimensions', String(NOISY_SIZE), '-q'],
    { env: BIN_ENV, reject: false },
  );
  assert.equal(applied.exitCode, 0, applied.stderr);
  const dataset = await openDataset(out);
  const rows: DatasetRow[] = (await Promise.all(SPLIT_NAMES.map((split) => dataset.rows(split)))).flat();
  const bySource = new Map(rows.map((row) => [row.source, row]));
  assert.equal(rows.length, set.rows.length - 2);
  assert.ok(!bySource.has(issues[1]!.image!) && !bySource.has(issues[2]!.image!));
  assert.equal(bySource.get(issues[0]!.image!)!.category, target);
  assert.equal(bySource.get(issues[3]!.image!)!.category, issues[3]!.given_label);
  assert.deepEqual(dataset.manifest.review, {
    decisions_file: decisionsPath,
    decisions_sha256: sha256(await readFile(decisionsPath)),
    dropped: 2,
    relabelled: 1,
    kept: 1,
    unmatched: 0,
  });
  const rejected = await rowsOf(join(out, 'rejected.csv'));
  assert.deepEqual(
    rejected.map((r) => r.reason),
    ['dropped-by-review', 'dropped-by-review'],
  );
});
