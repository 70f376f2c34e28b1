import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { basename } from 'node:path';
import { gzipSync } from 'node:zlib';
import { after, before, describe, it } from 'node:test';
import sharp from 'sharp';
import { createLogger } from '@imgpipe/kit';
import { loadModel, type LoadedModel } from '@imgpipe/engines';
import { decodeToTensor } from '@imgpipe/images';
import { bombPng, makeTempDir, type TempDir } from '@imgpipe/test-utils';

import { createModelLoader } from './model-loader.js';
import { runServe, type ServeHandle, type ServeOptions, type ServedModel } from './serve.js';
import { metric, request, seedBody, v2Body } from './test-client.js';
import { buildTestModelDir, TEST_LABELS, TEST_SIZE } from '@imgpipe/engines/test-model';
import { testImage } from '@imgpipe/test-utils';

const DEVICE = 'wasm' as const;
const logLines: string[] = [];
const sink = {
  write: (chunk: string) => {
    logLines.push(String(chunk));
    return true;
  },
} as unknown as NodeJS.WritableStream;
const stdoutLines: string[] = [];
const stdout = {
  write: (chunk: string) => {
    stdoutLines.push(String(chunk));
    return true;
  },
} as unknown as NodeJS.WritableStream;

function options(modelDir: string, overrides: Partial<ServeOptions> = {}): ServeOptions {
  return {
    model: modelDir,
    host: '127.0.0.1',
    port: 0,
    maxBatch: 8,
    maxDelayMs: 2,
    maxQueue: 64,
    maxBody: 1024 * 1024,
    maxPixels: 4_000_000,
    echo: 'annotated',
    jsonLogs: true,
    graceMs: 10_000,
    load: createModelLoader({ device: DEVICE, aws: { endpoint: '' } as never, maxPixels: overrides.maxPixels ?? 4_000_000 }),
    stdout,
    stderr: sink,
    log: createLogger({ name: 'serve', stream: sink }),
    ...overrides,
  };
}

/** A loader whose model waits at a gate before each predict: the model is real, only its timing is held. */
function gatedLoader(_modelDir: string) {
  let open: () => void = () => undefined;
  let gate = Promise.resolve();
  let calls = 0;
  const control = {
    close() {
      gate = new Promise((resolve) => (open = resolve));
    },
    open: () => open(),
    calls: () => calls,
  };
  const inner = createModelLoader({ device: DEVICE, aws: { endpoint: '' } as never, maxPixels: 4_000_000 });
  const load = async (spec: string): Promise<ServedModel> => {
    const model = await inner(spec);
    return {
      ...model,
      predict: async (pixels, count) => {
        calls += 1;
        await gate;
        return model.predict(pixels, count);
      },
    };
  };
  return { control, load };
}

describe('serve over HTTP with a real model', () => {
  let temp: TempDir;
  let modelDir: string;
  let reference: LoadedModel;
  let server: ServeHandle;
  const images: { path: string; bytes: Buffer }[] = [];

  /** loadModel's probabilities for encoded images, through the same decode as training. */
  async function expected(bytes: Buffer[]): Promise<number[][]> {
    const pixels = new Uint8Array(bytes.length * TEST_SIZE * TEST_SIZE * 3);
    for (const [i, b] of bytes.entries()) pixels.set(await decodeToTensor(b, { size: TEST_SIZE, fit: 'fill' }), i * TEST_SIZE * TEST_SIZE * 3);
    const probs = await reference.predict(pixels, bytes.length);
    return bytes.map((_, i) => Array.from(probs.slice(i * TEST_LABELS.length, (i + 1) * TEST_LABELS.length)));
  }

  before(async () => {
    temp = await makeTempDir('imgpipe-serve-');
    modelDir = await buildTestModelDir(temp.path);
    reference = await loadModel(modelDir, { device: DEVICE });
    for (let i = 0; i < 6; i += 1) {
      images.push({ path: `img-${i}.${i % 2 ? 'jpg' : 'png'}`, bytes: await testImage(i, 40 + i * 7, 30 + i * 3, i % 2 ? 'jpeg' : 'png') });
    }
    server = await runServe(options(modelDir, { name: 'pets' }));
  });

  after(async () => {
    await server?.close();
    await reference?.dispose();
    await temp?.remove();
  });

  it('reports live, ready, and the model metadata; prints the pointer line', async () => {
    assert.deepEqual((await request(server.url, '/v2/health/live')).body, { live: true });
    const ready = await request(server.url, '/v2/health/ready');
    assert.equal(ready.status, 200);
    const meta = await request(server.url, '/v2/models/pets');
    assert.equal(meta.status, 200);
    assert.equal(meta.body.name, 'pets');
    assert.deepEqual(meta.body.parameters.labels, TEST_LABELS);
    assert.deepEqual(meta.body.outputs[0], { name: 'probabilities', datatype: 'FP32', shape: [-1, 2] });
    assert.equal((await request(server.url, '/v2/models/other')).status, 404);
    const pointer = stdoutLines.map((l) => JSON.parse(l)).find((p) => p.url === server.url);
    assert.deepEqual(pointer, { kind: 'server', url: server.url, model: modelDir, name: 'pets' });
  });

  it("answers the seed route with loadModel's probabilities and an annotated image", async () => {
    const want = await expected(images.map((i) => i.bytes));
    for (const route of ['/', '/predict']) {
      const reply = await request(server.url, route, { body: seedBody(images) });
      assert.equal(reply.status, 200, JSON.stringify(reply.body));
      assert.deepEqual(
        Object.keys(reply.body),
        images.map((i) => i.path),
      );
      for (const [i, image] of images.entries()) {
        const answer = reply.body[image.path];
        assert.deepEqual(
          TEST_LABELS.map((label) => answer.probs[label]),
          want[i],
          image.path,
        );
        const best = want[i]![0]! >= want[i]![1]! ? 'cat' : 'dog';
        assert.equal(answer.pred, best);
        const returned = Buffer.from(answer.encoded, 'base64');
        assert.notDeepEqual(returned, image.bytes, 'annotated, not echoed');
        const [inMeta, outMeta] = await Promise.all([sharp(image.bytes).metadata(), sharp(returned).metadata()]);
        assert.deepEqual([outMeta.width, outMeta.height, outMeta.format], [inMeta.width, inMeta.height, inMeta.format]);
      }
    }
    // Not every image gets the same label, so the equality above is not trivial.
    assert.ok(new Set(want.map((p) => p[0]! > p[1]!)).size === 2, `test images should get both labels: ${JSON.stringify(want)}`);
  });

  it('answers the Open Inference Protocol infer route', async () => {
    const bytes = images.map((i) => i.bytes);
    const want = await expected(bytes);
    const reply = await request(server.url, '/v2/models/pets/infer', { body: v2Body(bytes, 'req-1') });
    assert.equal(reply.status, 200, JSON.stringify(reply.body));
    assert.equal(reply.body.model_name, 'pets');
    assert.equal(reply.body.id, 'req-1');
    const [probs, labels] = reply.body.outputs;
    assert.deepEqual({ ...probs, data: undefined }, { name: 'probabilities', datatype: 'FP32', shape: [bytes.length, 2], data: undefined });
    assert.deepEqual(probs.data, want.flat());
    assert.deepEqual(labels, { name: 'labels', datatype: 'BYTES', shape: [bytes.length], data: want.map((p) => (p[0]! >= p[1]! ? 'cat' : 'dog')) });
    const only = await request(server.url, '/v2/models/pets/infer', { body: { ...v2Body(bytes.slice(0, 1)), outputs: [{ name: 'labels' }] } });
    assert.deepEqual(
      only.body.outputs.map((o: { name: string }) => o.name),
      ['labels'],
    );
    assert.equal((await request(server.url, '/v2/models/nope/infer', { body: v2Body(bytes) })).status, 404);
  });

  it('answers bad input with 400 naming the item, without affecting other requests', async () => {
    const good = images[0]!;
    const notImage = Buffer.from('just some text, not an image');
    const truncated = images[1]!.bytes.subarray(0, 200);
    const cases: [string, unknown, RegExp, Record<string, unknown>?][] = [
      ['invalid JSON', '{"data": [', /invalid JSON/],
      ['not an object', '[1,2]', /expected a JSON object/],
      ['missing data', {}, /"data" to be a list/],
      ['missing path', { data: [{ encoded: good.bytes.toString('base64') }] }, /data\[0\]: missing "path"/, { item: 'data[0]' }],
      ['missing encoded', { data: [{ path: 'a.png' }] }, /missing "encoded"/, { item: 'a.png' }],
      [
        'bad base64',
        {
          data: [
            { path: 'ok.png', encoded: good.bytes.toString('base64') },
            { path: 'b.png', encoded: '@@not base64@@' },
          ],
        },
        /"b\.png"\): not valid base64/,
        { item: 'b.png' },
      ],
      [
        'not an image',
        seedBody([good, { path: 'notes.jpg', bytes: notImage }]),
        /notes\.jpg: not-an-image/,
        { item: 'notes.jpg', reason: 'not-an-image' },
      ],
      ['truncated image', seedBody([{ path: 'cut.jpg', bytes: truncated }]), /cut\.jpg: unreadable/, { item: 'cut.jpg', reason: 'unreadable' }],
      [
        'decompression bomb',
        seedBody([{ path: 'bomb.png', bytes: bombPng(50_000, 50_000) }]),
        /bomb\.png: decompression-bomb/,
        { item: 'bomb.png', reason: 'decompression-bomb' },
      ],
      ['V2 wrong datatype', { inputs: [{ name: 'images', shape: [1], datatype: 'FP32', data: [1] }] }, /datatype "BYTES"/],
      [
        'V2 data nested 10,000 lists deep',
        `{"inputs":[{"name":"images","datatype":"BYTES","shape":[1],"data":${'['.repeat(10_000)}"QQ=="${']'.repeat(10_000)}}]}`,
        /input "images": "data" is nested more than 32 lists deep/,
      ],
      ['V2 not an image', v2Body([notImage]), /input "images" data\[0\]: not-an-image/, { item: 'input "images" data[0]' }],
    ];
    const before = await request(server.url, '/metrics');
    // Every bad request runs alongside a good one; the good ones must all succeed.
    const results = await Promise.all(
      cases.map(async ([name, body, pattern, fields]) => {
        const path = name.startsWith('V2') ? '/v2/models/pets/infer' : '/predict';
        const [bad, ok] = await Promise.all([
          request(server.url, path, typeof body === 'string' ? { raw: body } : { body }),
          request(server.url, '/predict', { body: seedBody([good]) }),
        ]);
        return { name, bad, ok, pattern, fields };
      }),
    );
    for (const { name, bad, ok, pattern, fields } of results) {
      assert.equal(bad.status, 400, `${name}: ${JSON.stringify(bad.body)}`);
      assert.match(bad.body.error, pattern, name);
      for (const [key, value] of Object.entries(fields ?? {})) assert.equal(bad.body[key], value, `${name}: ${key}`);
      assert.equal(ok.status, 200, `${name}: the good request beside it`);
    }
    const after = await request(server.url, '/metrics');
    assert.equal(
      (metric(after.body, 'imgpipe_serve_requests_total{route="/predict",status="400"}') ?? 0) -
        (metric(before.body, 'imgpipe_serve_requests_total{route="/predict",status="400"}') ?? 0),
      cases.filter(([n]) => !n.startsWith('V2')).length,
    );
    assert.equal((await request(server.url, '/v2/health/ready')).status, 200);
  });

  it('answers 413 for bodies over --max-body, 404 for unknown routes, 405 for wrong methods', async () => {
    const big = { data: [{ path: 'big.png', encoded: 'A'.repeat(1024 * 1024 + 10) }] };
    const tooBig = await request(server.url, '/predict', { body: big });
    assert.equal(tooBig.status, 413);
    assert.match(tooBig.body.error, /--max-body/);
    // Chunked (no Content-Length): refused while streaming.
    const stream = new ReadableStream({
      start(controller) {
        for (let i = 0; i < 40; i += 1) controller.enqueue(new Uint8Array(64 * 1024).fill(65));
        controller.close();
      },
    });
    const chunked = await fetch(new URL('/predict', server.url), { method: 'POST', body: stream, duplex: 'half' } as RequestInit);
    assert.equal(chunked.status, 413);
    await chunked.arrayBuffer();
    const missing = await request(server.url, '/nope');
    assert.equal(missing.status, 404);
    assert.match(missing.body.error, /no route GET \/nope/);
    const wrong = await request(server.url, '/predict');
    assert.equal(wrong.status, 405);
    assert.equal(wrong.headers.get('allow'), 'POST');
    assert.equal((await request(server.url, '/predict', { body: seedBody([images[0]!]) })).status, 200, 'still serving');
  });

  it('reads a body whose UTF-8 characters arrive split between reads', async () => {
    const path = 'chat-été-🐱.jpg';
    const body = Buffer.from(JSON.stringify(seedBody([{ path, bytes: images[0]!.bytes }])));
    const cat = body.indexOf(Buffer.from('🐱'));
    const { host, port } = new URL(server.url);
    const answer = await new Promise<string>((resolve) => {
      const socket = connect(Number(port), '127.0.0.1', async () => {
        socket.write(
          `POST /predict HTTP/1.1\r\nHost: ${host}\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n`,
        );
        socket.write(body.subarray(0, cat + 2)); // half of the cat
        await sleep(50);
        socket.write(body.subarray(cat + 2));
      });
      let text = '';
      socket.on('data', (chunk) => (text += chunk.toString()));
      socket.on('close', () => resolve(text));
    });
    assert.match(answer, /^HTTP\/1\.1 200 /);
    assert.deepEqual(Object.keys(JSON.parse(answer.slice(answer.indexOf('\r\n\r\n') + 4))), [path]);
  });

  it('accepts an absolute-form request target, as RFC 9112 says a server must', async () => {
    const { host, port } = new URL(server.url);
    const answer = await new Promise<string>((resolve) => {
      const socket = connect(Number(port), '127.0.0.1', () =>
        socket.end(`GET http://${host}/v2/health/ready?x=1 HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`),
      );
      let text = '';
      socket.on('data', (chunk) => (text += chunk.toString()));
      socket.on('close', () => resolve(text));
    });
    assert.match(answer, /^HTTP\/1\.1 200 OK/);
    assert.match(answer, /\{"ready":true\}$/);
  });

  it('refuses a body over --max-body before inviting it (Expect: 100-continue), and a compressed body with 415', async () => {
    const { port } = new URL(server.url);
    const exchange = (head: string, body = '') =>
      new Promise<string>((resolve) => {
        const socket = connect(Number(port), '127.0.0.1', () => socket.write(head + body));
        let text = '';
        socket.on('data', (chunk) => (text += chunk.toString()));
        socket.on('close', () => resolve(text));
        socket.setTimeout(3_000, () => socket.destroy());
      });
    const big = await exchange(`POST /predict HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: ${1024 * 1024 + 1}\r\n\r\n`);
    assert.match(big, /^HTTP\/1\.1 413 /, 'answered at once, with no 100 Continue first');
    assert.match(big, /--max-body/);
    const small = await exchange('POST /predict HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 2\r\nConnection: close\r\n\r\n', '{}');
    assert.match(small, /^HTTP\/1\.1 100 Continue\r\n\r\nHTTP\/1\.1 400 /, 'a body within the limit is invited and read');
    const gzipped = await fetch(new URL('/predict', server.url), {
      method: 'POST',
      body: gzipSync('{}'),
      headers: { 'content-type': 'application/json', 'content-encoding': 'gzip' },
    });
    assert.equal(gzipped.status, 415);
    assert.match(((await gzipped.json()) as { error: string }).error, /Content-Encoding "gzip" is not accepted; send the body uncompressed/);
  });

  it('survives clients that hang up mid-body or do not speak HTTP', async () => {
    const { port } = new URL(server.url);
    const talk = (bytes: string, hangUp: boolean) =>
      new Promise<string>((resolve) => {
        const socket = connect(Number(port), '127.0.0.1', () => {
          socket.write(bytes);
          if (hangUp) setTimeout(() => socket.destroy(), 20);
        });
        let answer = '';
        socket.on('data', (chunk) => (answer += chunk.toString()));
        socket.on('close', () => resolve(answer));
        socket.on('error', () => undefined);
      });
    await talk('POST /predict HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n{"data": [', true);
    assert.match(await talk('\x16\x03\x01 this is not HTTP\r\n\r\n', false), /^HTTP\/1\.1 400 Bad Request/);
    assert.equal((await request(server.url, '/predict', { body: seedBody([images[0]!]) })).status, 200);
    await new Promise((r) => setTimeout(r, 50));
    assert.ok(
      !logLines.some((l) => /"status":500|internal error|serve: error/.test(l)),
      `no 500s, no errors logged: ${logLines
        .filter((l) => /error/.test(l))
        .slice(-2)
        .join('')}`,
    );
    assert.ok(
      logLines.some((l) => /"status":499/.test(l)),
      `the hang-up is logged as 499: ${logLines
        .filter((l) => l.includes('"status":4'))
        .slice(-3)
        .join('')}`,
    );
  });

  it('exposes Prometheus metrics', async () => {
    const reply = await request(server.url, '/metrics');
    assert.equal(reply.status, 200);
    assert.match(reply.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
    const text: string = reply.body;
    assert.ok((metric(text, 'imgpipe_serve_requests_total{route="/predict",status="200"}') ?? 0) >= 2);
    assert.ok((metric(text, 'imgpipe_serve_request_duration_seconds_count{route="/predict"}') ?? 0) >= 2);
    assert.ok((metric(text, 'imgpipe_serve_batch_size_count') ?? 0) >= 1);
    assert.ok((metric(text, 'imgpipe_serve_images_total') ?? 0) >= images.length);
    assert.ok((metric(text, 'imgpipe_serve_images_per_second') ?? 0) > 0);
    assert.equal(metric(text, 'imgpipe_serve_queue_depth'), 0);
    assert.equal(metric(text, 'imgpipe_serve_pending_images'), 0);
    assert.equal(metric(text, 'imgpipe_serve_ready'), 1);
    assert.equal(
      metric(text, 'imgpipe_serve_tf_num_tensors'),
      0,
      'the model runs as model.onnx: TF.js holds no tensors (the head is in the ONNX session)',
    );
    assert.ok((metric(text, 'process_resident_memory_bytes') ?? 0) > 1e6);
    const logged = logLines.filter((l) => l.includes('"msg":"request"')).map((l) => JSON.parse(l));
    assert.ok(
      logged.some((l) => l.path === '/predict' && l.status === 200 && l.images === 1 && l.bytes_in > 100 && l.bytes_out > 100),
      'one JSON log line per request',
    );
    assert.ok(
      logged.some((l) => l.status === 400 && /not-an-image/.test(l.error)),
      'errors are logged with their message',
    );
  });

  it('serves 2,000 requests from 16 concurrent clients with no errors and a flat tensor count', async () => {
    const tensors = async () => metric((await request(server.url, '/metrics')).body, 'imgpipe_serve_tf_num_tensors')!;
    const start = await tensors();
    const statuses = new Map<number, number>();
    let next = 0;
    const total = 2000;
    await Promise.all(
      Array.from({ length: 16 }, async () => {
        while (next < total) {
          const i = next++;
          const image = images[i % images.length]!;
          const reply =
            i % 5 === 0
              ? await request(server.url, '/v2/models/pets/infer', { body: v2Body([image.bytes]) })
              : await request(server.url, '/predict', { body: seedBody([image]) });
          statuses.set(reply.status, (statuses.get(reply.status) ?? 0) + 1);
        }
      }),
    );
    assert.deepEqual([...statuses], [[200, total]]);
    assert.equal(await tensors(), start, 'tf.memory().numTensors after the load');
    const text = (await request(server.url, '/metrics')).body as string;
    const batches = metric(text, 'imgpipe_serve_batch_size_count')!;
    const batched = metric(text, 'imgpipe_serve_batch_size_sum')!;
    assert.ok(batched / batches > 1, `dynamic batching should coalesce concurrent requests (mean batch ${batched / batches})`);
  });

  it('answers in JSON that any parser reads, whatever the paths hold', async () => {
    const paths = ['say "cheese".jpg', 'back\\slash\nnew line\u0000.png', 'chat-été-\u{1F408}.png', '\u2028\u2029', '__proto__', 'constructor'];
    const named = paths.map((path, i) => ({ path, bytes: images[i]!.bytes }));
    const reply = await request(server.url, '/predict', { body: seedBody(named) });
    assert.equal(reply.status, 200);
    assert.equal(reply.headers.get('content-type'), 'application/json; charset=utf-8');
    const body = reply.body as Record<string, { pred: string; encoded: string; probs: Record<string, number> }>;
    assert.deepEqual(Object.keys(body), paths);
    const probs = await expected(named.map((image) => image.bytes));
    for (const [i, path] of paths.entries()) {
      const answer = Object.getOwnPropertyDescriptor(body, path)?.value as (typeof body)[string];
      assert.deepEqual(Object.keys(answer), ['pred', 'encoded', 'probs'], path);
      assert.deepEqual(Object.keys(answer.probs), TEST_LABELS, path);
      for (const [c, label] of TEST_LABELS.entries()) assert.ok(Math.abs(answer.probs[label]! - probs[i]![c]!) < 1e-5, `${path}: ${label}`);
      assert.match(answer.encoded, /^[A-Za-z0-9+/]+={0,2}$/, path);
    }
  });

  it('echoes images unchanged with --echo raw', async () => {
    const raw = await runServe(options(modelDir, { echo: 'raw', maxBatch: 1 }));
    try {
      const named = [...images.slice(0, 2), { path: '__proto__', bytes: images[2]!.bytes }];
      const reply = await request(raw.url, '/predict', { body: seedBody(named) });
      assert.equal(reply.status, 200);
      for (const image of named)
        assert.equal(Object.getOwnPropertyDescriptor(reply.body, image.path)?.value.encoded, image.bytes.toString('base64'), image.path);
      // Default V2 name: the model directory's, or its parent's when it is the run layout's model/.
      assert.equal(raw.state.modelName, basename(temp.path));
      assert.equal((await request(raw.url, `/v2/models/${basename(temp.path)}`)).status, 200);
    } finally {
      await raw.close();
    }
  });

  it('answers 503 with Retry-After when the queue is full', async () => {
    const { control, load } = gatedLoader(modelDir);
    const busy = await runServe(options(modelDir, { load, maxQueue: 2, maxBatch: 1, maxDelayMs: 0 }));
    try {
      control.close();
      const first = request(busy.url, '/predict', { body: seedBody([images[0]!]) });
      const second = request(busy.url, '/predict', { body: seedBody([images[1]!]) });
      while (busy.state.classifier!.pending < 2) await new Promise((r) => setTimeout(r, 5));
      const refused = await request(busy.url, '/predict', { body: seedBody([images[2]!]) });
      assert.equal(refused.status, 503);
      assert.equal(refused.headers.get('retry-after'), '1');
      assert.match(refused.body.error, /--max-queue/);
      const v2 = await request(busy.url, `/v2/models/${busy.state.modelName}/infer`, { body: v2Body([images[2]!.bytes]) });
      assert.equal(v2.status, 503);
      control.open();
      assert.equal((await first).status, 200);
      assert.equal((await second).status, 200);
      assert.equal((await request(busy.url, '/predict', { body: seedBody([images[2]!]) })).status, 200, 'serves again once drained');
    } finally {
      control.open();
      await busy.close();
    }
  });

  it('is live but not ready while the model loads', async () => {
    let release: () => void = () => undefined;
    const held = new Promise<void>((resolve) => (release = resolve));
    const inner = createModelLoader({ device: DEVICE, aws: { endpoint: '' } as never, maxPixels: 4_000_000 });
    const events: string[] = [];
    const stderr = {
      write: (chunk: string) => {
        events.push(String(chunk));
        return true;
      },
    } as unknown as NodeJS.WritableStream;
    const starting = runServe(
      options(modelDir, {
        stderr,
        load: async (spec) => {
          await held;
          return inner(spec);
        },
      }),
    );
    let url: string | undefined;
    while (!url) {
      url = events.map((l) => JSON.parse(l)).find((e) => e.msg === 'listening')?.url;
      await new Promise((r) => setTimeout(r, 5));
    }
    assert.equal((await request(url, '/v2/health/live')).status, 200);
    const notReady = await request(url, '/v2/health/ready');
    assert.deepEqual([notReady.status, notReady.body], [503, { ready: false }]);
    const early = await request(url, '/predict', { body: seedBody([images[0]!]) });
    assert.equal(early.status, 503);
    assert.match(early.body.error, /still loading/);
    assert.equal(metric((await request(url, '/metrics')).body, 'imgpipe_serve_ready'), 0);
    release();
    const handle = await starting;
    try {
      assert.equal((await request(url, '/v2/health/ready')).status, 200);
      assert.equal((await request(url, '/predict', { body: seedBody([images[0]!]) })).status, 200);
    } finally {
      await handle.close();
    }
  });

  it('shuts down gracefully: no new connections, requests in flight answered', async () => {
    const { control, load } = gatedLoader(modelDir);
    const stopping = await runServe(options(modelDir, { load, maxBatch: 4 }));
    control.close();
    const callsBefore = control.calls();
    const inFlight = images.slice(0, 3).map((image) => request(stopping.url, '/predict', { body: seedBody([image]) }));
    // All three admitted (under load the last body can still be on its way when the first batch starts).
    while (control.calls() === callsBefore || (stopping.state.classifier?.pending ?? 0) < 3) await new Promise((r) => setTimeout(r, 5));
    const closed = stopping.close();
    await new Promise((r) => setTimeout(r, 50));
    await assert.rejects(fetch(new URL('/v2/health/live', stopping.url)), 'no new connections once closing');
    control.open();
    const replies = await Promise.all(inFlight);
    assert.deepEqual(
      replies.map((r) => r.status),
      [200, 200, 200],
    );
    await closed;
    assert.equal(stopping.state.shuttingDown, true);
  });
});
