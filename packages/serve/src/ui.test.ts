import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { get } from 'node:http';
import { createInterface } from 'node:readline';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { createLogger, readStylesheet } from '@imgpipe/kit';
import { makeTempDir, type TempDir } from '@imgpipe/test-utils';

import { createModelLoader } from './model-loader.js';
import { runServe, type ServeHandle, type ServeOptions } from './serve.js';
import { PAGE_CSP } from './security-headers.js';
import { request, seedBody } from './test-client.js';
import { buildTestModelDir } from '@imgpipe/engines/test-model';
import { testImage } from '@imgpipe/test-utils';

const sink = { write: () => true } as unknown as NodeJS.WritableStream;
const BIN = fileURLToPath(new URL('../bin/serve.js', import.meta.url));
const REPORT_STYLE = 'body { color: teal; }';
const REPORT = `<!doctype html><html><head><style>${REPORT_STYLE}</style></head><body>
<img src="plots/confusion-matrix.png" alt="c"><a href="eval.json">eval.json</a></body></html>`;

function options(model: string, ui: boolean): ServeOptions {
  return {
    model,
    host: '127.0.0.1',
    port: 0,
    maxBatch: 4,
    maxDelayMs: 1,
    maxQueue: 16,
    maxBody: 1024 * 1024,
    maxPixels: 4_000_000,
    echo: 'raw',
    jsonLogs: true,
    graceMs: 5_000,
    load: createModelLoader({ device: 'wasm', aws: { endpoint: '' } as never, maxPixels: 4_000_000 }),
    stdout: sink,
    stderr: sink,
    log: createLogger({ name: 'serve', stream: sink }),
    ui,
  };
}

/** GET with the path sent exactly as written (fetch would normalise ../ away). */
function rawGet(base: string, path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    get(new URL(base), { path }, (response) => {
      let body = '';
      response.on('data', (chunk: Buffer) => (body += chunk.toString()));
      response.on('end', () => resolve({ status: response.statusCode ?? 0, body }));
    }).on('error', reject);
  });
}

const html = { accept: 'text/html,application/xhtml+xml,*/*;q=0.8' };

/** What eval-model records as model.sha256: sha256 over the sorted "<path> <sha256>" lines of the model's files. */
async function weightsOf(modelDir: string): Promise<string> {
  const card = JSON.parse(await readFile(join(modelDir, 'card.json'), 'utf8')) as { files: { path: string; sha256: string }[] };
  return createHash('sha256')
    .update(
      card.files
        .map((f) => `${f.path} ${f.sha256}\n`)
        .sort()
        .join(''),
    )
    .digest('hex');
}

describe('serve: the page for browsers (HTTP level)', () => {
  let temp: TempDir;
  let modelDir: string;
  let server: ServeHandle;

  before(async () => {
    temp = await makeTempDir('imgpipe-serve-ui-');
    modelDir = await buildTestModelDir(temp.path); // <temp>/model: temp is the run directory
    await mkdir(join(temp.path, 'plots'));
    await writeFile(join(temp.path, 'report.html'), REPORT);
    await writeFile(join(temp.path, 'plots', 'confusion-matrix.png'), await testImage(1));
    await writeFile(join(temp.path, 'plots', 'other.png'), await testImage(2));
    await writeFile(join(temp.path, 'run.json'), '{"secret": true}');
    await writeFile(join(temp.path, 'eval.json'), JSON.stringify({ model: { path: 'model', sha256: await weightsOf(modelDir) } }));
    server = await runServe(options(modelDir, true));
  });
  after(async () => {
    await server?.close();
    await temp?.remove();
  });

  it('serves the page at GET / to browsers, with a strict CSP and the security headers', async () => {
    const page = await fetch(server.url, { headers: html });
    assert.equal(page.status, 200);
    assert.equal(page.headers.get('content-type'), 'text/html; charset=utf-8');
    assert.equal(page.headers.get('content-security-policy'), PAGE_CSP);
    assert.match(PAGE_CSP, /default-src 'self'/);
    assert.doesNotMatch(PAGE_CSP, /unsafe-inline|unsafe-eval/);
    assert.match(PAGE_CSP, /frame-ancestors 'none'/);
    assert.equal(page.headers.get('x-content-type-options'), 'nosniff');
    assert.equal(page.headers.get('referrer-policy'), 'no-referrer');
    assert.equal(page.headers.get('x-frame-options'), 'DENY');
    assert.equal(page.headers.get('vary'), 'Accept');
    const text = await page.text();
    assert.match(text, /<script type="module" src="ui\/app\.js"><\/script>/);
    assert.doesNotMatch(text, /<script>|<style|\sstyle="|\son[a-z]+="|https?:\/\//, 'no inline code and nothing from elsewhere');
    // The JSON routes carry the same headers.
    const json = await fetch(new URL('/v2/health/live', server.url));
    assert.equal(json.headers.get('x-content-type-options'), 'nosniff');
    assert.match(json.headers.get('server-timing') ?? '', /^total;dur=\d+(\.\d)?$/);
  });

  it('keeps GET / for programs and POST / as they were', async () => {
    const program = await request(server.url, '/');
    assert.equal(program.status, 405);
    assert.equal(program.headers.get('allow'), 'POST');
    assert.match(program.body.error, /GET is not allowed on \/; use POST/);
    const seed = await request(server.url, '/', { body: seedBody([{ path: 'x.png', bytes: await testImage(3) }]) });
    assert.equal(seed.status, 200);
    assert.ok(['cat', 'dog'].includes(seed.body['x.png'].pred));
  });

  it('serves only the allow-listed files, with their types and ETags (304 when unchanged)', async () => {
    const script = await fetch(new URL('/ui/app.js', server.url));
    assert.equal(script.headers.get('content-type'), 'text/javascript; charset=utf-8');
    assert.equal(script.headers.get('cache-control'), 'no-cache');
    const built = await readFile(new URL('../dist/ui/app.js', import.meta.url));
    assert.deepEqual(Buffer.from(await script.arrayBuffer()), built);
    const etag = script.headers.get('etag')!;
    assert.match(etag, /^"[\w-]{27}"$/);
    const again = await fetch(new URL('/ui/app.js', server.url), { headers: { 'if-none-match': etag } });
    assert.equal(again.status, 304);
    assert.equal((await again.arrayBuffer()).byteLength, 0);
    const style = await fetch(new URL('/ui/style.css', server.url));
    assert.equal(style.headers.get('content-type'), 'text/css; charset=utf-8');
    assert.ok((await style.text()).startsWith(await readStylesheet()), 'the shared stylesheet comes first');
    for (const path of ['/ui/index.html', '/ui/page.css', '/ui/app.ts', '/ui/tsconfig.json', '/ui/..%2Fpackage.json', '/ui/%2E%2E%2Fsrc%2Fcli.ts']) {
      const refused = await rawGet(server.url, path);
      assert.equal(refused.status, 404, path);
      assert.match(refused.body, /no file .* in the page/, path);
    }
  });

  it('gives the model card as JSON, with links that exist', async () => {
    const { status, body } = await request(server.url, '/ui/model');
    assert.equal(status, 200);
    assert.deepEqual(body.labels, ['cat', 'dog']);
    assert.equal(body.input_size, 32);
    assert.equal(typeof body.backbone, 'string');
    assert.equal(body.test_accuracy, null, 'the test model was never evaluated');
    assert.ok(!Number.isNaN(Date.parse(body.trained)));
    assert.equal(body.max_body, 1024 * 1024);
    assert.deepEqual(body.links, { metadata: `v2/models/${body.name}`, metrics: 'metrics', report: 'ui/report/report.html' });
    for (const link of Object.values(body.links) as string[]) assert.equal((await fetch(new URL(link, server.url))).status, 200, link);
  });

  it("serves the run's report read-only: the file and the plots it links, under a script-free CSP", async () => {
    const report = await fetch(new URL('/ui/report/report.html', server.url));
    assert.equal(report.status, 200);
    assert.equal(await report.text(), REPORT);
    const csp = report.headers.get('content-security-policy') ?? '';
    const hash = createHash('sha256').update(REPORT_STYLE).digest('base64');
    assert.match(csp, /default-src 'none'/);
    assert.ok(csp.includes(`style-src 'sha256-${hash}'`), csp);
    const plot = await fetch(new URL('/ui/report/plots/confusion-matrix.png', server.url));
    assert.equal(plot.status, 200);
    assert.equal(plot.headers.get('content-type'), 'image/png');
    assert.deepEqual(Buffer.from(await plot.arrayBuffer()), await testImage(1));
    for (const path of [
      '/ui/report/plots/other.png', // in plots/ but not linked from the report
      '/ui/report/plots/..%2Frun.json',
      '/ui/report/plots/..%2Fmodel%2Fcard.json',
      '/ui/report/run.json',
      '/ui/report/eval.json',
      '/ui/report/..%2Frun.json',
    ]) {
      const refused = await rawGet(server.url, path);
      assert.equal(refused.status, 404, path);
      assert.doesNotMatch(refused.body, /secret/, path);
    }
  });

  it("serves no other model's report after the run directory is replaced, and its 404s name no local path", async () => {
    const evalJson = await readFile(join(temp.path, 'eval.json'), 'utf8');
    const other = `<!doctype html><html><body>another model's report<img src="plots/confusion-matrix.png" alt="c"></body></html>`;
    try {
      // Another run now sits at the same path (retrained, or a directory copied over it): its own report and eval.json.
      await writeFile(join(temp.path, 'report.html'), other);
      await writeFile(join(temp.path, 'eval.json'), JSON.stringify({ model: { path: 'model', sha256: 'f'.repeat(64) } }));
      for (const path of ['/ui/report/report.html', '/ui/report/plots/confusion-matrix.png']) {
        const refused = await request(server.url, path);
        assert.equal(refused.status, 404, path);
        assert.match(refused.body.error, /the evaluation report beside the served model is for other weights/, path);
        assert.ok(!JSON.stringify(refused.body).includes(temp.path), `${path}: ${JSON.stringify(refused.body)}`);
      }
      assert.equal((await request(server.url, '/ui/model')).body.links.report, null);
      // No report at all: the 404 says so without the run directory's path.
      await rm(join(temp.path, 'report.html'));
      const missing = await request(server.url, '/ui/report/report.html');
      assert.equal(missing.status, 404);
      assert.match(missing.body.error, /no evaluation report for the served model/);
      assert.ok(!JSON.stringify(missing.body).includes(temp.path), JSON.stringify(missing.body));
    } finally {
      await writeFile(join(temp.path, 'report.html'), REPORT);
      await writeFile(join(temp.path, 'eval.json'), evalJson);
    }
    assert.equal((await fetch(new URL('/ui/report/report.html', server.url))).status, 200, "the served model's own report again");
  });

  it('turns the page off with ui: false (404; GET / for programs as before)', async () => {
    const off = await runServe(options(modelDir, false));
    try {
      for (const path of ['/ui/app.js', '/ui/style.css', '/ui/model', '/ui/report/report.html']) {
        const reply = await request(off.url, path);
        assert.equal(reply.status, 404, path);
        assert.match(reply.body.error, /--no-ui/, path);
      }
      const root = await fetch(off.url, { headers: html });
      assert.equal(root.status, 404);
      assert.match(((await root.json()) as { error: string }).error, /the page is off \(serve --no-ui\)/);
      const program = await request(off.url, '/');
      assert.equal(program.status, 405);
      assert.equal(program.headers.get('allow'), 'POST');
    } finally {
      await off.close();
    }
  });

  it("serve --no-ui (the real bin) answers 404 for the page's files", async () => {
    const child = spawn(process.execPath, [BIN, '--model', modelDir, '--port', '0', '--device', 'wasm', '--no-ui'], {
      stdio: ['ignore', 'pipe', 'ignore'],
    });
    try {
      const [line] = (await once(createInterface({ input: child.stdout }), 'line')) as [string];
      const { url } = JSON.parse(line) as { url: string };
      assert.equal((await request(url, '/ui/app.js')).status, 404);
      assert.equal((await fetch(url, { headers: html })).status, 404);
      assert.equal((await request(url, '/v2/health/ready')).status, 200);
    } finally {
      child.kill('SIGTERM');
      await once(child, 'exit');
    }
  });
});
