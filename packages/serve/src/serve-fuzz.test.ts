import assert from 'node:assert/strict';
import { request as httpRequest } from 'node:http';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { after, before, describe, it } from 'node:test';
import fc from 'fast-check';
import { createLogger } from '@imgpipe/kit';
import { makeTempDir, type TempDir } from '@imgpipe/test-utils';
import { createModelLoader } from './model-loader.js';
import { runServe, type ServeHandle } from './serve.js';
import { seedBody, v2Body } from './test-client.js';
import { buildTestModelDir } from '@imgpipe/engines/test-model';
import { testImage } from '@imgpipe/test-utils';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;
const quiet = { write: () => true } as unknown as NodeJS.WritableStream;

interface Sent {
  path: string;
  headers: Record<string, string>;
  body: Buffer;
}

/** One request over a fresh loopback connection; resolves with the status (or -1 when the server closed it). */
function send(port: number, sent: Sent): Promise<number> {
  return new Promise((resolve) => {
    const req = httpRequest({ host: '127.0.0.1', port, method: 'POST', path: sent.path, headers: sent.headers, agent: false }, (response) => {
      response.resume();
      response.on('end', () => resolve(response.statusCode!));
      response.on('error', () => resolve(-1));
    });
    req.on('error', () => resolve(-1));
    req.setTimeout(20_000, () => req.destroy());
    req.end(sent.body);
  });
}

describe('fuzzing both protocols with mutated valid requests (seeded)', () => {
  let temp: TempDir;
  let server: ServeHandle;
  let images: Buffer[];

  before(async () => {
    temp = await makeTempDir('imgpipe-serve-fuzz-');
    const modelDir = await buildTestModelDir(temp.path);
    images = [await testImage(1, 40, 30, 'png'), await testImage(2, 36, 28, 'jpeg')];
    server = await runServe({
      model: modelDir,
      host: '127.0.0.1',
      port: 0,
      maxBatch: 8,
      maxDelayMs: 2,
      maxQueue: 64,
      maxBody: 256 * 1024,
      maxPixels: 4_000_000,
      echo: 'annotated',
      jsonLogs: true,
      graceMs: 5_000,
      maxImages: 16,
      load: createModelLoader({ device: 'wasm', aws: { endpoint: '' } as never, maxPixels: 4_000_000 }),
      stdout: quiet,
      stderr: quiet,
      log: createLogger({ name: 'serve', stream: quiet }),
    });
  });
  after(async () => {
    await server?.close();
    await temp?.remove();
  });

  it('never answers 5xx other than 503, never crashes, and keeps memory flat', async () => {
    const model = server.state.modelName;
    const imageBytes = fc.oneof(
      fc.constantFrom(...images),
      fc.tuple(fc.constantFrom(...images), fc.nat(), fc.integer({ min: 0, max: 255 })).map(([b, at, v]) => {
        const copy = Buffer.from(b);
        copy[at % copy.length] = v;
        return copy;
      }),
      fc.tuple(fc.constantFrom(...images), fc.nat()).map(([b, n]) => b.subarray(0, n % b.length)),
      fc.uint8Array({ maxLength: 200 }).map((a) => Buffer.from(a)),
      fc.constantFrom(
        Buffer.from('<svg xmlns="http://www.w3.org/2000/svg" width="9000" height="9000"/>'),
        Buffer.from('GIF89a'),
        Buffer.from('RIFF\0\0\0\0WEBPVP8 '),
      ),
    );
    const base64 = fc.oneof(
      imageBytes.map((b) => b.toString('base64')),
      imageBytes.map((b) => `data:image/png;base64,${b.toString('base64url')}`),
      fc.tuple(imageBytes, fc.nat(), fc.string({ minLength: 1, maxLength: 3 })).map(([b, at, s]) => {
        const text = b.toString('base64');
        const i = at % (text.length + 1);
        return text.slice(0, i) + s + text.slice(i);
      }),
    );
    const anyJson = fc.jsonValue({ maxDepth: 3 });
    const seed = fc.oneof(
      fc
        .array(fc.tuple(fc.string({ maxLength: 8 }), base64), { minLength: 1, maxLength: 20 })
        .map((entries) => ({ data: entries.map(([path, encoded]) => ({ path, encoded })) })),
      fc
        .tuple(fc.array(base64, { minLength: 1, maxLength: 3 }), anyJson)
        .map(([encoded, extra]) => ({ data: encoded.map((e, i) => ({ path: `${i}.png`, encoded: e, extra })) })),
      anyJson.map((data) => ({ data })),
      fc.tuple(base64, anyJson).map(([encoded, path]) => ({ data: [{ path, encoded }] })),
    );
    const v2 = fc.oneof(
      fc
        .array(base64, { minLength: 1, maxLength: 20 })
        .map((data) => v2Body([]) && { inputs: [{ name: 'images', shape: [data.length], datatype: 'BYTES', data }] }),
      fc
        .tuple(
          fc.array(base64, { minLength: 1, maxLength: 4 }),
          fc.array(fc.integer({ min: -2, max: 5 }), { maxLength: 3 }),
          fc.constantFrom('BYTES', 'FP32', 'bytes', 7),
        )
        .map(([data, shape, datatype]) => ({ inputs: [{ name: 'images', shape, datatype, data }] })),
      fc
        .tuple(base64, anyJson, anyJson)
        .map(([b, id, outputs]) => ({ ...v2Body([]), id, outputs, inputs: [{ name: 'x', shape: [1], datatype: 'BYTES', data: [[b]] }] })),
      anyJson.map((inputs) => ({ inputs })),
    );
    const bodyOf = (value: unknown) => Buffer.from(JSON.stringify(value));
    const rawBody = fc.oneof(
      fc.constant(null),
      fc.uint8Array({ maxLength: 300 }).map((a) => Buffer.from(a)),
      fc.nat().map((n) => ({ cut: n })),
    );
    const headers = fc.record({
      'content-type': fc.constantFrom('application/json', 'text/plain', 'application/json; charset=latin1', ''),
      chunked: fc.boolean(),
      short: fc.boolean(),
      junk: fc.string({ maxLength: 20 }).map((s) => s.replace(/[^\x20-\x7e]/g, '')),
    });
    const cases = fc.tuple(fc.boolean(), seed, v2, rawBody, headers).map(([useV2, s, v, raw, h]): Sent => {
      let body = bodyOf(useV2 ? v : s);
      if (raw instanceof Buffer) body = raw;
      else if (raw && 'cut' in raw) body = body.subarray(0, raw.cut % (body.length + 1));
      const sentHeaders: Record<string, string> = { 'x-fuzz': h.junk };
      if (h['content-type']) sentHeaders['content-type'] = h['content-type'];
      if (h.chunked) sentHeaders['transfer-encoding'] = 'chunked';
      else sentHeaders['content-length'] = String(h.short && body.length > 0 ? body.length - 1 : body.length);
      return { path: useV2 ? `/v2/models/${model}/infer` : '/predict', headers: sentHeaders, body };
    });

    // Warm up, then measure memory from here.
    for (let i = 0; i < 5; i += 1)
      await send(server.port, {
        path: '/predict',
        headers: { 'content-type': 'application/json' },
        body: bodyOf(seedBody([{ path: 'a.png', bytes: images[0]! }])),
      });
    gc();
    const baseline = process.memoryUsage();
    const started = performance.now();
    const statuses = new Map<number, number>();
    await fc.assert(
      fc.asyncProperty(cases, async (sent) => {
        const status = await send(server.port, sent);
        statuses.set(status, (statuses.get(status) ?? 0) + 1);
        assert.ok(
          status < 500 || status === 503,
          `status ${status} for ${sent.path} ${JSON.stringify(sent.headers)} ${sent.body.subarray(0, 200).toString('latin1')}`,
        );
      }),
      { seed: 20261201, numRuns: 300, interruptAfterTimeLimit: 60_000 },
    );
    assert.ok(performance.now() - started < 90_000);
    assert.ok((statuses.get(200) ?? 0) > 0 && (statuses.get(400) ?? 0) > 0, `a mix of answers: ${JSON.stringify([...statuses])}`);
    const health = await send(server.port, {
      path: '/predict',
      headers: { 'content-type': 'application/json' },
      body: bodyOf(seedBody([{ path: 'a.png', bytes: images[0]! }])),
    });
    assert.equal(health, 200, 'still serving');
    assert.equal(server.state.limits.bodyBudget.used, 0);
    await new Promise((resolve) => setTimeout(resolve, 200));
    gc();
    const afterwards = process.memoryUsage();
    const grown = (afterwards.heapUsed + afterwards.arrayBuffers - baseline.heapUsed - baseline.arrayBuffers) / 1024 ** 2;
    assert.ok(grown < 16, `heap and buffers grew by ${grown.toFixed(1)} MB over the fuzz run`);
  });
});
