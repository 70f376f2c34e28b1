import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { createLogger } from '@imgpipe/kit';
import { makeTempDir, type TempDir } from '@imgpipe/test-utils';
import { createModelLoader } from './model-loader.js';
import { runServe, type ServeHandle } from './serve.js';
import { request, seedBody } from './test-client.js';
import { buildTestModelDir } from '@imgpipe/engines/test-model';
import { testImage } from '@imgpipe/test-utils';

const quiet = { write: () => true } as unknown as NodeJS.WritableStream;

const open = (port: number) =>
  new Promise<Socket>((resolve, reject) => {
    const socket = connect(port, '127.0.0.1', () => resolve(socket));
    socket.on('error', reject);
  });
const closed = (socket: Socket) => new Promise<void>((resolve) => (socket.destroyed ? resolve() : socket.once('close', () => resolve())));

describe('slow clients (slow headers, slow bodies, idle keep-alives)', () => {
  let temp: TempDir;
  let server: ServeHandle;
  before(async () => {
    temp = await makeTempDir('imgpipe-serve-slow-');
    const modelDir = await buildTestModelDir(temp.path);
    server = await runServe({
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
      graceMs: 2_000,
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

  it('answers normal requests fast while slow clients hold connections, and closes idle keep-alives', async () => {
    const { port } = server;
    const body = seedBody([{ path: 'x.png', bytes: await testImage(1) }]);
    const sockets: Socket[] = [];
    const timers: NodeJS.Timeout[] = [];
    // 40 slow-header clients: a byte of the request line every 100 ms.
    for (let i = 0; i < 40; i += 1) {
      const socket = await open(port);
      sockets.push(socket);
      const text = 'POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n';
      let at = 0;
      timers.push(setInterval(() => !socket.destroyed && at < text.length && socket.write(text[at++]!), 100));
    }
    // 40 slow-body clients: 100 kB declared, 10 bytes every 100 ms.
    for (let i = 0; i < 40; i += 1) {
      const socket = await open(port);
      sockets.push(socket);
      socket.write('POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{"data":[');
      timers.push(setInterval(() => !socket.destroyed && socket.write(' '.repeat(10)), 100));
    }
    // 40 kept-alive connections, one request each, then idle.
    const idle: Socket[] = [];
    for (let i = 0; i < 40; i += 1) {
      const socket = await open(port);
      socket.on('error', () => undefined);
      socket.write('GET /v2/health/live HTTP/1.1\r\nHost: x\r\n\r\n');
      await new Promise((resolve) => socket.once('data', resolve));
      idle.push(socket);
    }
    for (const socket of sockets) socket.on('error', () => undefined);
    try {
      const latencies: number[] = [];
      const until = performance.now() + 3_000;
      while (performance.now() < until) {
        const started = performance.now();
        const reply = await request(server.url, '/predict', { body });
        latencies.push(performance.now() - started);
        assert.equal(reply.status, 200);
      }
      latencies.sort((a, b) => a - b);
      const worst = latencies.at(-1)!;
      assert.ok(latencies.length >= 5 && worst < 1_000, `${latencies.length} requests, slowest ${worst.toFixed(0)} ms`);
      // keepAliveTimeout is 5 s: the idle connections are closed by the server within about 6.5 s.
      const idleClosed = await Promise.race([
        Promise.all(idle.map(closed)).then(() => true),
        new Promise((resolve) => setTimeout(() => resolve(false), 6_500)),
      ]);
      assert.equal(idleClosed, true, 'idle kept-alive connections were closed');
    } finally {
      for (const timer of timers) clearInterval(timer);
      for (const socket of [...sockets, ...idle]) socket.destroy();
    }
  });
});
