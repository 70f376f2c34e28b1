// The page in a real browser: Debian's chromium (IMGPIPE_CHROMIUM, default /usr/bin/chromium; .ci/run installs it)
// driven by playwright-core, which never downloads a browser of its own. The server is the real bin.
// Page-side code is written as strings: the tests are typechecked without the DOM library.
import { createHash } from 'node:crypto';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it, type TestContext } from 'node:test';
import { chromium, type Browser, type FileChooser, type Page } from 'playwright-core';
import sharp from 'sharp';
import { createRng, readStylesheet } from '@imgpipe/kit';
import { makeTempDir, type TempDir } from '@imgpipe/test-utils';

import { request, v2Body } from './test-client.js';
import { buildTestModelDir } from '@imgpipe/engines/test-model';
import { testImage } from '@imgpipe/test-utils';

const CHROMIUM = process.env.IMGPIPE_CHROMIUM ?? '/usr/bin/chromium';
const BIN = fileURLToPath(new URL('../bin/serve.js', import.meta.url));
const MAX_BODY = 128 * 1024;
const TEST_ACCURACY = 0.9375;

interface Upload {
  name: string;
  mimeType: string;
  buffer: Buffer;
}

/** A PNG of seeded noise: incompressible, so 300 pixels square is over MAX_BODY. */
async function noisePng(side: number): Promise<Buffer> {
  const rng = createRng(3);
  const pixels = Buffer.from(Array.from({ length: side * side * 3 }, () => Math.floor(rng() * 256)));
  return sharp(pixels, { raw: { width: side, height: side, channels: 3 } })
    .png()
    .toBuffer();
}

/**
 * The CSP violations the page reported to itself, and the console's messages. Chromium logs every 4xx answer to a
 * fetch ("Failed to load resource"); `unexpected` leaves out the statuses a test provokes on purpose.
 */
async function watch(page: Page) {
  const console: string[] = [];
  page.on('console', (message) => console.push(`${message.type()}: ${message.text()}`));
  page.on('pageerror', (error) => console.push(`pageerror: ${error.message}`));
  await page.addInitScript({
    content: `window.cspViolations = [];
      document.addEventListener('securitypolicyviolation', (e) => window.cspViolations.push(e.effectiveDirective + ' ' + e.blockedURI));`,
  });
  return {
    console,
    violations: () => page.evaluate('window.cspViolations') as Promise<string[]>,
    unexpected: (...refusals: number[]) =>
      console.filter(
        (line) => !refusals.some((status) => line.startsWith(`error: Failed to load resource: the server responded with a status of ${status} `)),
      ),
  };
}

describe('serve: the page in headless Chromium', () => {
  let temp: TempDir;
  let server: ChildProcess;
  let url: string;
  let name: string;
  let browser: Browser;
  const images: Upload[] = [];
  const notes: Upload = { name: 'notes.txt', mimeType: 'text/plain', buffer: Buffer.from('shopping list: milk, eggs\n') };
  let huge: Upload;

  before(async () => {
    assert.ok(existsSync(CHROMIUM), `no browser at ${CHROMIUM}: apt-get install chromium (or set IMGPIPE_CHROMIUM)`);
    temp = await makeTempDir('imgpipe-serve-browser-');
    const modelDir = await buildTestModelDir(temp.path);
    // What eval-model adds: test metrics on the card, a report with the shared stylesheet inlined, its plot.
    const cardPath = join(modelDir, 'card.json');
    const card = JSON.parse(await readFile(cardPath, 'utf8'));
    card.metrics = { ...card.metrics, test_accuracy: TEST_ACCURACY };
    await writeFile(cardPath, JSON.stringify(card));
    // eval.json names the weights the report is about (serve shows a report only for the weights it serves).
    const weights = createHash('sha256')
      .update(
        (card.files as { path: string; sha256: string }[])
          .map((f) => `${f.path} ${f.sha256}\n`)
          .sort()
          .join(''),
      )
      .digest('hex');
    await writeFile(join(temp.path, 'eval.json'), JSON.stringify({ model: { path: 'model', sha256: weights } }));
    await mkdir(join(temp.path, 'plots'));
    await writeFile(join(temp.path, 'plots', 'confusion-matrix.png'), await testImage(5, 120, 120));
    await writeFile(
      join(temp.path, 'report.html'),
      `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Evaluation</title><style>\n${await readStylesheet()}</style></head>` +
        '<body><h1>Evaluation</h1><figure><img src="plots/confusion-matrix.png" alt="Confusion matrix"></figure></body></html>',
    );

    server = spawn(
      process.execPath,
      [BIN, '--model', modelDir, '--port', '0', '--device', 'wasm', '--name', 'pets', '--max-body', String(MAX_BODY)],
      {
        stdio: ['ignore', 'pipe', 'inherit'],
      },
    );
    const [line] = (await once(createInterface({ input: server.stdout! }), 'line')) as [string];
    ({ url, name } = JSON.parse(line) as { url: string; name: string });

    // Two generated images the model labels differently, so the equality checks below are not trivial.
    const first = await testImage(0, 160, 120, 'png');
    images.push({ name: 'first.png', mimeType: 'image/png', buffer: first });
    const firstLabel = (await apiAnswer(first)).label;
    for (let seed = 1; seed < 40 && images.length < 2; seed += 1) {
      const bytes = await testImage(seed, 160, 120, 'jpeg');
      if ((await apiAnswer(bytes)).label !== firstLabel) images.push({ name: `second-${seed}.jpg`, mimeType: 'image/jpeg', buffer: bytes });
    }
    assert.equal(images.length, 2, 'two test images with different labels');
    huge = { name: 'huge.png', mimeType: 'image/png', buffer: await noisePng(300) };
    assert.ok(huge.buffer.length > MAX_BODY);

    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true });
  });

  after(async () => {
    await browser?.close();
    if (server && server.exitCode === null) {
      server.kill('SIGTERM');
      await once(server, 'exit');
    }
    if (process.env.IMGPIPE_KEEP_SCREENSHOTS) return; // keep the temp dir with the screenshots to look at
    await temp?.remove();
  });

  /** The JSON API's answer for one image, straight from Node. */
  async function apiAnswer(bytes: Buffer): Promise<{ label: string; probs: number[] }> {
    const reply = await request(url, `/v2/models/${name}/infer`, { body: v2Body([bytes]) });
    assert.equal(reply.status, 200, JSON.stringify(reply.body));
    return { label: reply.body.outputs[1].data[0], probs: reply.body.outputs[0].data };
  }

  /** Every finished card shows what the JSON API answers for the same file: label, and each class's probability. */
  async function checkCards(page: Page, uploads: Upload[]): Promise<void> {
    for (const upload of uploads) {
      const card = page.locator(`li.card[data-file="${upload.name}"][data-state="done"]`);
      await card.waitFor({ timeout: 30_000 });
      const want = await apiAnswer(upload.buffer);
      assert.equal(await card.locator('.label').textContent(), want.label, upload.name);
      const rows = [];
      for (const li of await card.locator('.probs li').all()) {
        rows.push({
          label: await li.getAttribute('data-label'),
          prob: Number(await li.getAttribute('data-prob')),
          text: await li.locator('.value').textContent(),
        });
      }
      assert.deepEqual(
        rows.map((r) => r.label),
        ['cat', 'dog'],
      );
      assert.deepEqual(
        rows.map((r) => r.prob),
        want.probs,
        `${upload.name}: the probabilities shown are the API's`,
      );
      assert.deepEqual(
        rows.map((r) => r.text),
        want.probs.map((p) => `${(p * 100).toFixed(1)} %`),
      );
      assert.match((await card.locator('.time').textContent()) ?? '', /^server \d+\.\d ms · round trip \d+ ms$/);
      assert.equal(await card.locator('img').getAttribute('alt'), upload.name);
    }
  }

  it('classifies uploaded images as the JSON API does, explains refusals, keeps the CSP, and looks right', async (t: TestContext) => {
    const context = await browser.newContext({ viewport: { width: 1100, height: 900 }, colorScheme: 'light' });
    const page = await context.newPage();
    const { console, violations, unexpected } = await watch(page);
    const wire: Promise<number>[] = [];
    page.on('requestfinished', (req) => wire.push(req.sizes().then((s) => s.responseHeadersSize + s.responseBodySize)));

    const started = performance.now();
    await page.goto(url);
    await page.locator('html[data-ready]').waitFor();
    const interactive = performance.now() - started;
    const inPage = Number(await page.locator('html').getAttribute('data-ready'));
    await page.waitForLoadState('networkidle');
    const sizes = await Promise.all(wire);
    const bytes = sizes.reduce((a, b) => a + b, 0);
    t.diagnostic(
      `first load: ${sizes.length} responses, ${bytes} bytes over the wire; interactive ${interactive.toFixed(0)} ms after goto, ${inPage} ms on the page's clock`,
    );
    assert.equal(sizes.length, 4, 'the page, its stylesheet, its script and the model card');
    assert.ok(bytes < 40_000, `the page stays small: ${bytes} bytes`);
    // A second load: the browser revalidates its copies by ETag (304s), so only headers and the card travel.
    wire.length = 0;
    const again = performance.now();
    await page.reload();
    await page.locator('html[data-ready]').waitFor();
    const interactiveAgain = performance.now() - again;
    await page.waitForLoadState('networkidle');
    const bytesAgain = (await Promise.all(wire)).reduce((a, b) => a + b, 0);
    t.diagnostic(
      `reload: ${bytesAgain} bytes over the wire; interactive ${interactiveAgain.toFixed(0)} ms after reload, ${await page.locator('html').getAttribute('data-ready')} ms on the page's clock`,
    );
    assert.ok(bytesAgain < bytes / 2, `revalidated, not downloaded again: ${bytesAgain} bytes`);

    // The model card.
    const card = Object.fromEntries(
      await page.locator('#card dt').evaluateAll((dts) => dts.map((dt) => [dt.textContent, dt.nextElementSibling!.textContent])),
    );
    assert.equal(card.Name, 'pets');
    assert.equal(card.Labels, 'cat, dog');
    assert.equal(card['Input size'], '32 × 32 px');
    assert.equal(card['Test accuracy'], '93.8 %');
    assert.ok(card.Backbone && card.Trained, JSON.stringify(card));
    assert.deepEqual(await page.locator('#links a').evaluateAll((as) => as.map((a) => a.getAttribute('href'))), [
      'v2/models/pets',
      'metrics',
      'ui/report/report.html',
    ]);
    assert.equal(await page.getByLabel('Images to classify').getAttribute('id'), 'file', 'the file input is labelled');

    // Two images through the file input, then a text file and one over --max-body.
    await page.setInputFiles('#file', images);
    await checkCards(page, images);
    await page.setInputFiles('#file', [notes]);
    const refused = page.locator('li.card[data-file="notes.txt"][data-state="error"]');
    await refused.waitFor();
    assert.equal(await refused.locator('.error').textContent(), 'Not an image the server can read.');
    assert.equal(await refused.locator('.error').getAttribute('role'), 'alert');
    assert.match((await refused.locator('.detail').textContent()) ?? '', /^Server: .*not-an-image/);
    await page.setInputFiles('#file', [huge]);
    const tooLarge = page.locator('li.card[data-file="huge.png"][data-state="error"] .error');
    await tooLarge.waitFor();
    assert.match((await tooLarge.textContent()) ?? '', /^Too large: 26\d KB; this server takes images up to about 96 KB\.$/);

    // Screenshots: light and dark at desktop width, and a phone.
    const shots = { light: join(temp.path, 'page-light.png'), dark: join(temp.path, 'page-dark.png'), phone: join(temp.path, 'page-phone.png') };
    await page.screenshot({ path: shots.light, fullPage: true });
    await page.emulateMedia({ colorScheme: 'dark' });
    assert.equal(
      await page.evaluate('getComputedStyle(document.body).backgroundColor'),
      'rgb(21, 24, 28)',
      'dark colours when the system asks for them',
    );
    await page.screenshot({ path: shots.dark, fullPage: true });
    await page.emulateMedia({ colorScheme: 'light' });
    await page.setViewportSize({ width: 390, height: 844 });
    assert.equal(await page.evaluate('document.documentElement.scrollWidth'), 390, 'no sideways scrolling at phone width');
    await page.screenshot({ path: shots.phone, fullPage: true });
    t.diagnostic(
      `screenshots: ${Object.values(shots).join(' ')}${process.env.IMGPIPE_KEEP_SCREENSHOTS ? '' : ' (removed after the test; IMGPIPE_KEEP_SCREENSHOTS=1 keeps them)'}`,
    );

    // The CSP held: nothing refused, nothing logged. Then a control: the same listener does see a refused inline script.
    assert.deepEqual(await violations(), []);
    assert.deepEqual(unexpected(400), [], 'nothing in the console but the refused text file');
    assert.equal(console.length, 1, console.join('\n'));
    await page.evaluate(
      `{ const script = document.createElement('script'); script.textContent = 'document.title = "injected"'; document.body.append(script); }`,
    );
    await page.waitForFunction('window.cspViolations.length > 0');
    assert.deepEqual(await violations(), ['script-src-elem inline']);
    assert.notEqual(await page.title(), 'injected');

    // The report, through serve, in the same look (its inline stylesheet allowed by hash) with its plot.
    const report = await context.newPage();
    const reportWatch = await watch(report);
    await report.goto(new URL('ui/report/report.html', url).href);
    assert.equal(await report.evaluate('getComputedStyle(document.body).backgroundColor'), 'rgb(251, 251, 250)', 'the shared look applies');
    assert.equal(await report.evaluate("document.querySelector('img').naturalWidth"), 120, 'the plot loads');
    assert.deepEqual(await reportWatch.violations(), []);
    assert.deepEqual(reportWatch.console, []);
    await context.close();
  });

  it('works from the keyboard alone', async () => {
    const context = await browser.newContext({ viewport: { width: 1100, height: 900 } });
    const page = await context.newPage();
    const { console, violations } = await watch(page);
    // Listening before the page loads: Playwright turns Chromium's file chooser interception on without waiting for
    // it, so a listener added just before the key press can miss the chooser (puppeteer#6040; 1 run in 6 here).
    const chooser = new Promise<FileChooser>((resolve) => page.once('filechooser', resolve));
    await page.goto(url);
    await page.locator('html[data-ready]').waitFor();
    const focused = () => page.evaluate("document.activeElement.id || document.activeElement.getAttribute('href') || document.activeElement.tagName");
    for (let i = 0; i < 5 && (await focused()) !== 'file'; i += 1) await page.keyboard.press('Tab');
    assert.equal(await focused(), 'file', 'Tab reaches the file input');
    await page.keyboard.press('Space');
    const noChooser = sleep(30_000, null, { ref: false });
    const opened = await Promise.race([chooser, noChooser]);
    assert.ok(opened, 'Space on the focused file input opens the file chooser');
    await opened.setFiles(images);
    await checkCards(page, images);
    // On to the report link with Tab, and open it with Enter.
    for (let i = 0; i < 10 && (await focused()) !== 'ui/report/report.html'; i += 1) await page.keyboard.press('Tab');
    assert.equal(await focused(), 'ui/report/report.html', "Tab reaches the model card's links");
    await Promise.all([page.waitForURL(/\/ui\/report\/report\.html$/), page.keyboard.press('Enter')]);
    assert.equal(await page.locator('h1').textContent(), 'Evaluation');
    assert.deepEqual(await violations(), []);
    assert.deepEqual(console, []);
    await context.close();
  });
});
