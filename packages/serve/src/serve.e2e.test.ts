import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { makeTempDir, publishModelDir, startS3Server, uploadDirectory, type TempDir } from '@imgpipe/test-utils';
import { metric, request, seedBody, v2Body } from './test-client.js';
import { buildTestModelDir } from '@imgpipe/engines/test-model';
import { testImage } from '@imgpipe/test-utils';
import { waitFor, zeroPng } from '@imgpipe/test-utils';

// The real bin (bin/serve.js imports dist/main.js: run `npx tsc -b` first).
const BIN = fileURLToPath(new URL('../bin/serve.js', import.meta.url));

function start(args: string[], env: Record<string, string> = {}) {
  const child = spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = once(child, 'exit').then(([code, signal]) => ({ code: code as number | null, signal: signal as string | null }));
  const lines = createInterface({ input: child.stdout });
  const firstLine = new Promise<string>((resolve, reject) => {
    lines.once('line', resolve);
    void exited.then(({ code }) => reject(new Error(`serve exited with ${code} before printing its URL:\n${stderr}`)));
  });
  firstLine.catch(() => undefined); // tests that expect an early exit never read it
  return { child, firstLine, exited, stderr: () => stderr };
}

describe('serve bin (end to end)', () => {
  let temp: TempDir;
  let modelDir: string;
  before(async () => {
    temp = await makeTempDir('imgpipe-serve-e2e-');
    modelDir = await buildTestModelDir(temp.path);
  });
  after(() => temp?.remove());

  it('serves, logs JSON per request, and exits 0 on SIGTERM with a request in flight', async () => {
    const server = start([
      ...['--model', modelDir, '--port', '0', '--device', 'wasm', '--json-logs', '--name', 'pets', '--max-delay-ms', '5000'],
      ...['--max-pixels', '1000000000', '--max-request-pixels', '1000000000'],
    ]);
    try {
      const pointer = JSON.parse(await server.firstLine);
      assert.equal(pointer.kind, 'server');
      assert.match(pointer.url, /^http:\/\/127\.0\.0\.1:\d+\/$/);
      assert.equal((await request(pointer.url, '/v2/health/ready')).status, 200);
      const image = await testImage(3);
      const reply = await request(pointer.url, '/predict', { body: seedBody([{ path: 'x.png', bytes: image }]) });
      assert.equal(reply.status, 200);
      assert.ok(['cat', 'dog'].includes(reply.body['x.png'].pred));
      // A request waits up to 5 s for its batch to fill while another request's image is being decoded (900
      // megapixels of PNG); SIGTERM arrives meanwhile and both answers still come, the waiting one at once
      // (shutting down flushes the batcher).
      const metrics = async () => (await request(pointer.url, '/metrics')).body;
      const decoding = request(pointer.url, '/v2/models/pets/infer', { body: v2Body([zeroPng(30_000, 30_000)]) });
      await waitFor(async () => metric(await metrics(), 'imgpipe_serve_pending_images') === 1, 'the large image to be decoding');
      const inFlight = request(pointer.url, '/v2/models/pets/infer', { body: v2Body([image]) });
      await waitFor(async () => (metric(await metrics(), 'imgpipe_serve_queue_depth') ?? 0) >= 1, 'the small image to wait for a batch');
      const stopped = performance.now();
      server.child.kill('SIGTERM');
      assert.equal((await inFlight).status, 200);
      assert.ok(performance.now() - stopped < 4000, 'the batch ran at shutdown rather than after --max-delay-ms');
      assert.equal((await decoding).status, 200);
      assert.deepEqual(await server.exited, { code: 0, signal: null });
      const lines = server.stderr().split('\n').filter(Boolean);
      assert.deepEqual(
        lines.filter((l) => !l.startsWith('{')),
        [],
        'with --json-logs every stderr line is JSON',
      );
      const events = lines.map((l) => JSON.parse(l));
      assert.ok(events.some((e) => e.msg === 'request' && e.path === '/predict' && e.status === 200 && e.images === 1));
      assert.ok(events.some((e) => e.msg === 'ready'));
      assert.ok(events.some((e) => e.msg === 'stopped'));
      assert.ok(
        events.some((e) => e.level === 'info' && /SIGTERM/.test(e.msg)),
        'logger lines are JSON too',
      );
    } finally {
      server.child.kill('SIGKILL');
    }
  });

  it('serves a published model from s3:// (what publication.json lists, verified; downloaded at start, removed at exit)', async () => {
    const s3 = await startS3Server();
    try {
      await s3.createBucket('models');
      await publishModelDir(s3.client, 'models', 'results', modelDir);
      const server = start(['--model', 's3://models/results/model', '--port', '0', '--device', 'wasm'], s3.env);
      try {
        const pointer = JSON.parse(await server.firstLine);
        assert.equal(pointer.name, 'results', 'default name: the parent of model/');
        const reply = await request(pointer.url, '/predict', { body: seedBody([{ path: 'x.png', bytes: await testImage(1) }]) });
        assert.equal(reply.status, 200);
        server.child.kill('SIGINT');
        assert.deepEqual(await server.exited, { code: 0, signal: null });
      } finally {
        server.child.kill('SIGKILL');
      }
      const missing = start(['--model', 's3://models/nothing-here', '--port', '0', '--device', 'wasm'], s3.env);
      assert.equal((await missing.exited).code, 2);
      assert.match(missing.stderr(), /no publication\.json there/);
      // A model copied without a publication is not trusted from S3.
      await uploadDirectory(s3.client, 'models', 'raw/model', modelDir);
      const raw = start(['--model', 's3://models/raw/model', '--port', '0', '--device', 'wasm'], s3.env);
      assert.equal((await raw.exited).code, 2);
      assert.match(raw.stderr(), /no publication\.json there or one level up/);
    } finally {
      await s3.close();
    }
  });

  it('exits within --shutdown-timeout (plus a second) even while long decodes run', async () => {
    const server = start([
      '--model',
      modelDir,
      '--port',
      '0',
      '--device',
      'wasm',
      '--json-logs',
      '--shutdown-timeout',
      '0',
      '--max-pixels',
      '4000000000',
      '--max-request-pixels',
      '10000000000',
      '--decode-timeout',
      '120',
    ]);
    try {
      const pointer = JSON.parse(await server.firstLine);
      // 3.6 gigapixels of zeros: about 3.5 s of decoding each on a quiet machine (longer under load), and sharp
      // cannot cancel a decode. Before the fix the process waited for every decode, however long.
      const heavy = zeroPng(60_000, 60_000);
      const inFlight = request(pointer.url, '/predict', {
        body: seedBody([
          { path: 'a.png', bytes: heavy },
          { path: 'b.png', bytes: heavy },
        ]),
      }).catch((error: unknown) => error);
      // Both images are admitted (body read and parsed) once the server counts them pending; decoding follows.
      await waitFor(
        async () => metric((await request(pointer.url, '/metrics')).body, 'imgpipe_serve_pending_images') === 2,
        'the images to be decoding',
      );
      await new Promise((resolve) => setTimeout(resolve, 300));
      const stopped = performance.now();
      server.child.kill('SIGTERM');
      const exit = await server.exited;
      const seconds = (performance.now() - stopped) / 1000;
      await inFlight;
      assert.ok(seconds < 0 + 3, `exited ${seconds.toFixed(1)} s after SIGTERM with --shutdown-timeout 0: ${server.stderr()}`);
      // Ended by the SIGTERM it was sent (its default action), since exit() itself would wait for the decodes.
      assert.deepEqual(exit, { code: null, signal: 'SIGTERM' }, server.stderr());
      assert.match(server.stderr(), /still busy 0 s after SIGTERM/);
    } finally {
      server.child.kill('SIGKILL');
    }
  });

  it('exits 2 naming the problem for a directory that is not a model', async () => {
    const server = start(['--model', temp.path, '--port', '0', '--device', 'wasm']);
    const { code } = await server.exited;
    assert.equal(code, 2);
    assert.match(server.stderr(), /card\.json not found/);
  });

  it('exits 2 for a bad flag value', async () => {
    const server = start(['--model', modelDir, '--max-batch', '0']);
    assert.equal((await server.exited).code, 2);
    assert.match(server.stderr(), /--max-batch to be an integer >= 1/);
  });
});
