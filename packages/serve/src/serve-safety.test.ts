import assert from 'node:assert/strict';
import { request as httpRequest } from 'node:http';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { after, before, describe, it } from 'node:test';
import sharp from 'sharp';
import { createLogger } from '@imgpipe/kit';
import { makeTempDir, type TempDir } from '@imgpipe/test-utils';
import { createModelLoader } from './model-loader.js';
import { runServe, type ServeHandle, type ServeOptions, type ServedModel } from './serve.js';
import { heavySvg, zeroPng } from '@imgpipe/test-utils';
import { request, seedBody, v2Body } from './test-client.js';
import { buildTestModelDir } from '@imgpipe/engines/test-model';
import { testImage } from '@imgpipe/test-utils';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

const logLines: string[] = [];
const sink = {
  write: (chunk: string) => {
    logLines.push(String(chunk));
    return true;
  },
} as unknown as NodeJS.WritableStream;
const quiet = { write: () => true } as unknown as NodeJS.WritableStream;

function options(modelDir: string, overrides: Partial<ServeOptions> = {}): ServeOptions {
  return {
    model: modelDir,
    host: '127.0.0.1',
    port: 0,
    maxBatch: 8,
    maxDelayMs: 2,
    maxQueue: 512,
    maxBody: 16 * 1024 * 1024,
    maxPixels: 4_000_000,
    echo: 'annotated',
    jsonLogs: true,
    graceMs: 5_000,
    load: createModelLoader({ device: 'wasm', aws: { endpoint: '' } as never, maxPixels: overrides.maxPixels ?? 4_000_000 }),
    stdout: quiet,
    stderr: sink,
    log: createLogger({ name: 'serve', stream: sink, json: true }),
    ...overrides,
  };
}

/** The real model with a change to its predict (a fixed delay per batch, or a failure): the server is what is tested. */
function wrapped(_modelDir: string, predict: (inner: ServedModel['predict'], pixels: Uint8Array, count: number) => Promise<Float32Array>) {
  const inner = createModelLoader({ device: 'wasm', aws: { endpoint: '' } as never, maxPixels: 4_000_000 });
  return async (spec: string): Promise<ServedModel> => {
    const model = await inner(spec);
    return { ...model, predict: (pixels, count) => predict(model.predict, pixels, count) };
  };
}

describe('serve under attack', () => {
  let temp: TempDir;
  let modelDir: string;
  const servers: ServeHandle[] = [];
  const start = async (overrides: Partial<ServeOptions> = {}) => {
    const server = await runServe(options(modelDir, overrides));
    servers.push(server);
    return server;
  };

  before(async () => {
    temp = await makeTempDir('imgpipe-serve-safety-');
    modelDir = await buildTestModelDir(temp.path);
  });
  after(async () => {
    for (const server of servers) await server.close();
    await temp?.remove();
  });

  it('refuses undocumented formats by their signature before decoding (415), and --formats narrows the list', async () => {
    const server = await start();
    const started = performance.now();
    const svg = await request(server.url, '/predict', { body: seedBody([{ path: 'x.svg', bytes: heavySvg() }]) });
    assert.equal(svg.status, 415, JSON.stringify(svg.body));
    assert.equal(svg.body.reason, 'unsupported-format');
    assert.equal(svg.body.item, 'x.svg');
    assert.match(svg.body.error, /svg is not accepted/);
    const v2 = await request(server.url, `/v2/models/${server.state.modelName}/infer`, { body: v2Body([heavySvg()]) });
    assert.equal(v2.status, 415);
    assert.ok(performance.now() - started < 2_000, `refused in ${performance.now() - started} ms`);

    const pngOnly = await start({ formats: ['png'] });
    const jpeg = await request(pngOnly.url, '/predict', { body: seedBody([{ path: 'x.jpg', bytes: await testImage(1, 40, 30, 'jpeg') }]) });
    assert.equal(jpeg.status, 415);
    assert.match(jpeg.body.error, /jpeg is not accepted \(accepted: png\)/);
    const png = await request(pngOnly.url, '/predict', { body: seedBody([{ path: 'x.png', bytes: await testImage(1) }]) });
    assert.equal(png.status, 200);
  });

  it('reports a decompression bomb as such and keeps operator advice for the log', async () => {
    const server = await start();
    const bomb = await request(server.url, '/predict', { body: seedBody([{ path: 'bomb.png', bytes: zeroPng(4000, 4000) }]) });
    assert.equal(bomb.status, 400);
    assert.equal(bomb.body.reason, 'decompression-bomb');
    assert.doesNotMatch(JSON.stringify(bomb.body), /--max-pixels|raise/);
    const big = await sharp({
      create: { width: 2500, height: 2000, channels: 3, background: '#808080', noise: { type: 'gaussian', mean: 128, sigma: 40 } },
    })
      .jpeg()
      .toBuffer();
    logLines.length = 0;
    const tooLarge = await request(server.url, '/predict', { body: seedBody([{ path: 'big.jpg', bytes: big }]) });
    assert.equal(tooLarge.status, 400);
    assert.equal(tooLarge.body.reason, 'too-large');
    assert.doesNotMatch(JSON.stringify(tooLarge.body), /--max-pixels|raise/);
    assert.ok(
      logLines.some((l) => l.includes('big.jpg') && l.includes('raise --max-pixels')),
      logLines.join(''),
    );
  });

  it('bounds the annotated echo', async () => {
    const server = await start({ maxEchoPixels: 10_000 });
    const image = await testImage(2, 300, 200, 'jpeg');
    const reply = await request(server.url, '/predict', { body: seedBody([{ path: 'x.jpg', bytes: image }]) });
    assert.equal(reply.status, 200);
    const meta = await sharp(Buffer.from(reply.body['x.jpg'].encoded, 'base64')).metadata();
    assert.ok(meta.width! * meta.height! <= 10_000, `${meta.width}x${meta.height}`);
    assert.equal(meta.format, 'jpeg');
  });

  it('limits images and pixels per request', async () => {
    const server = await start({ maxImages: 4, maxRequestPixels: 5_000 });
    const small = await testImage(3, 20, 20);
    const five = Array.from({ length: 5 }, (_, i) => ({ path: `${i}.png`, bytes: small }));
    const many = await request(server.url, '/predict', { body: seedBody(five) });
    assert.equal(many.status, 400);
    assert.equal(many.body.reason, 'too-many-images');
    const v2 = await request(server.url, `/v2/models/${server.state.modelName}/infer`, { body: v2Body(five.map((f) => f.bytes)) });
    assert.equal(v2.status, 400);
    const wide = await testImage(3, 60, 60);
    const pixels = await request(server.url, '/predict', {
      body: seedBody([
        { path: 'a.png', bytes: wide },
        { path: 'b.png', bytes: wide },
      ]),
    });
    assert.equal(pixels.status, 400);
    assert.equal(pixels.body.reason, 'too-many-pixels');
    assert.equal((await request(server.url, '/predict', { body: seedBody([{ path: 'a.png', bytes: wide }]) })).status, 200);
  });

  it('shares the model: a small request is answered while a 160-image request is still running', async () => {
    const server = await start({
      maxBatch: 4,
      maxImages: 200,
      load: wrapped(modelDir, async (predict, pixels, count) => {
        await new Promise((resolve) => setTimeout(resolve, 40)); // a slower model: 40 batches take >= 1.6 s
        return predict(pixels, count);
      }),
    });
    const tiny = await testImage(4, 24, 24);
    const bigStarted = performance.now();
    let bigDone = 0;
    const big = request(server.url, '/predict', { body: seedBody(Array.from({ length: 160 }, (_, i) => ({ path: `${i}.png`, bytes: tiny }))) }).then(
      (r) => {
        bigDone = performance.now();
        return r;
      },
    );
    await new Promise((resolve) => setTimeout(resolve, 300));
    const smallStarted = performance.now();
    const small = await request(server.url, '/predict', { body: seedBody([{ path: 's.png', bytes: tiny }]) });
    const smallMs = performance.now() - smallStarted;
    assert.equal(small.status, 200);
    assert.equal(bigDone, 0, 'the big request is still running when the small one is answered');
    assert.equal((await big).status, 200);
    const bigMs = bigDone - bigStarted;
    assert.ok(smallMs < 500 && smallMs < bigMs / 3, `small request took ${smallMs.toFixed(0)} ms while the big one took ${bigMs.toFixed(0)} ms`);
  });

  it('admits request bodies within a byte budget before reading them; memory returns to its baseline', async () => {
    const server = await start({ maxInflightBytes: 32 * 1024 * 1024 });
    const { port } = server;
    const size = 12 * 1024 * 1024;
    const body = Buffer.alloc(size, 'A');
    body.write('{"data":[{"path":"a","encoded":"', 0);
    body.write('"}]}', size - 4);
    gc();
    const baseline = process.memoryUsage();
    let peak = baseline.rss;
    const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 5);
    const send = (chunked: boolean) =>
      new Promise<{ status: number; retryAfter?: string }>((resolve) => {
        const req = httpRequest(
          { port, host: '127.0.0.1', method: 'POST', path: '/predict', headers: chunked ? {} : { 'content-length': size } },
          (response) => {
            response.resume();
            response.on('end', () => resolve({ status: response.statusCode!, retryAfter: response.headers['retry-after'] as string | undefined }));
          },
        );
        req.on('error', () => resolve({ status: -1 })); // the server may close before all is sent
        req.end(body);
      });
    const results = await Promise.all(Array.from({ length: 48 }, (_, i) => send(i % 4 === 3)));
    clearInterval(sampler);
    const statuses = results.map((r) => r.status);
    assert.ok(
      statuses.every((s) => s === 400 || s === 503 || s === -1),
      JSON.stringify(statuses),
    );
    assert.ok(statuses.filter((s) => s === 503).length >= 30, `mostly refused: ${JSON.stringify(statuses)}`);
    assert.ok(results.filter((r) => r.status === 503).every((r) => r.retryAfter === '1'));
    assert.ok(statuses.includes(400), 'some were admitted and read');
    assert.equal(server.state.limits.bodyBudget.used, 0);
    const rise = (peak - baseline.rss) / 1024 ** 2;
    assert.ok(rise < 350, `RSS rose by ${rise.toFixed(0)} MB under 48 x 12 MB bodies`);
    await new Promise((resolve) => setTimeout(resolve, 200));
    gc();
    await new Promise((resolve) => setTimeout(resolve, 200));
    gc();
    const afterwards = process.memoryUsage();
    const held = (afterwards.arrayBuffers + afterwards.heapUsed - baseline.arrayBuffers - baseline.heapUsed) / 1024 ** 2;
    assert.ok(held < 32, `${held.toFixed(0)} MB still held after the burst`);
    assert.equal((await request(server.url, '/predict', { body: seedBody([{ path: 'ok.png', bytes: await testImage(5) }]) })).status, 200);
  });

  it('an unexpected error after the body was read is a 500 with a request id, logged as an error', async () => {
    const server = await start({
      load: wrapped(modelDir, async (predict, pixels, count) => {
        if (count === 1 && pixels.every((v) => v === 0)) return predict(pixels, count); // the warm-up
        throw new TypeError('boom: a bug in the engine');
      }),
    });
    logLines.length = 0;
    const reply = await request(server.url, '/predict', { body: seedBody([{ path: 'x.png', bytes: await testImage(6) }]) });
    assert.equal(reply.status, 500);
    assert.match(reply.body.request_id, /^[0-9a-z]+-[0-9a-z]+$/);
    assert.equal(reply.headers.get('x-request-id'), reply.body.request_id);
    assert.doesNotMatch(JSON.stringify(reply.body), /boom/, 'internals stay in the log');
    const logged = logLines.map((l) => JSON.parse(l)).filter((l) => l.level === 'error');
    assert.ok(
      logged.some((l) => l.msg.includes(reply.body.request_id) && l.msg.includes('boom')),
      JSON.stringify(logged),
    );
    const access = logLines.map((l) => JSON.parse(l)).find((l) => l.msg === 'request');
    assert.equal(access?.status, 500);
  });
});
