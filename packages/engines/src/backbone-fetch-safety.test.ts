import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { buildTinyConvBackbone, listFilesRecursive, makeTempDir, type TempDir } from '@imgpipe/test-utils';
import { loadBackbone } from '@imgpipe/engines';
import { BUILTIN_BACKBONES, builtinPath } from '@imgpipe/engines/backbone-builtin';
import { FailureError, InputError, safeJoin, sha256 } from '@imgpipe/kit';

/** Every file under dir, relative; none when it does not exist. */
const listFiles = (dir: string) => listFilesRecursive(dir).catch(() => [] as string[]);

describe('backbone downloads facing a hostile server', () => {
  let temp: TempDir;
  let server: Server;
  let base: string;
  let modelJson: Record<string, unknown>;
  let _weights: Buffer;
  let onnx: Buffer;
  const hits: string[] = [];

  before(async () => {
    temp = await makeTempDir('imgpipe-fetch-safety-');
    const tfjs = await buildTinyConvBackbone({ dir: join(temp.path, 'tfjs'), inputSize: 8, format: 'tfjs-layers' });
    modelJson = JSON.parse(await readFile(tfjs.path, 'utf8')) as Record<string, unknown>;
    _weights = await readFile(join(tfjs.dir, 'weights.bin'));
    onnx = await readFile((await buildTinyConvBackbone({ dir: join(temp.path, 'onnx'), inputSize: 8, format: 'onnx' })).path);
    server = createServer((request, response) => {
      const url = request.url!;
      hits.push(url);
      const attack = /^\/attack\/(\d+)\/model\.json$/.exec(url);
      if (attack) {
        const path = ATTACKS[Number(attack[1])]!;
        const manifest = (modelJson.weightsManifest as { paths: string[]; weights: unknown[] }[]).map((g) => ({ ...g, paths: [path] }));
        response.end(JSON.stringify({ ...modelJson, weightsManifest: manifest }));
        return;
      }
      if (url.startsWith('/stall/')) {
        response.writeHead(200, { 'content-length': String(onnx.length) });
        response.write(onnx.subarray(0, 10)); // then nothing, forever
        return;
      }
      if (url.startsWith('/silent/')) return; // never answers
      if (url.startsWith('/big/')) {
        response.writeHead(200); // chunked, no length: counted as it arrives
        const chunk = Buffer.alloc(64 * 1024);
        const pump = () => {
          while (response.write(chunk)) if (response.writableLength > 1e6) break;
        };
        response.on('drain', pump);
        pump();
        response.on('close', () => response.off('drain', pump));
        return;
      }
      if (url.startsWith('/ok/')) {
        response.end(onnx);
        return;
      }
      // Any weight file the attack makes us ask for: the attacker's bytes.
      response.end(Buffer.from('attacker bytes'));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
    await temp.remove();
  });

  const ATTACKS = [
    '../../../escaped.bin',
    '../escaped.bin',
    'a/../../escaped.bin',
    '/tmp/imgpipe-escaped-abs.bin',
    '..\\..\\escaped.bin',
    '%2e%2e/%2e%2e/escaped.bin',
    '..%2f..%2fescaped.bin',
    '',
  ];

  it('a model.json whose weight paths leave the cache writes nothing anywhere and names the path', async () => {
    for (const [i, path] of ATTACKS.entries()) {
      const root = join(temp.path, `attack-${i}`);
      const cacheDir = join(root, 'a', 'b', 'cache');
      const before = hits.length;
      await assert.rejects(
        loadBackbone(`${base}/attack/${i}/model.json`, { device: 'wasm', cacheDir, workers: 1, progress: false }),
        (error: Error) =>
          error instanceof InputError && error.message.includes('weightsManifest path') && error.message.includes(JSON.stringify(path)),
        JSON.stringify(path),
      );
      assert.deepEqual(await listFiles(root), [], `nothing written for ${JSON.stringify(path)}`);
      assert.deepEqual(hits.slice(before), [`/attack/${i}/model.json`], 'no weight file was even requested');
    }
    await assert.rejects(readFile('/tmp/imgpipe-escaped-abs.bin'), { code: 'ENOENT' });
  });

  it('the same check guards model directories read from disk', async () => {
    const dir = join(temp.path, 'disk');
    const tfjs = await buildTinyConvBackbone({ dir, inputSize: 8, format: 'tfjs-layers' });
    const json = JSON.parse(await readFile(tfjs.path, 'utf8')) as { weightsManifest: { paths: string[] }[] };
    json.weightsManifest[0]!.paths = ['../../../../etc/hostname'];
    await writeFile(tfjs.path, JSON.stringify(json));
    await assert.rejects(
      loadBackbone(tfjs.path, { device: 'wasm', workers: 1 }),
      (error: Error) => error instanceof InputError && /weightsManifest path/.test(error.message),
    );
    assert.throws(() => safeJoin('/models/m', '../card.json', 'card.json: head.path'), /head\.path "\.\.\/card\.json"/);
    assert.equal(safeJoin('/models/m', 'head/model.json'), '/models/m/head/model.json');
  });

  it('a stalled download fails after the idle timeout and leaves nothing in the cache', async () => {
    for (const route of ['stall', 'silent']) {
      const cacheDir = join(temp.path, `cache-${route}`);
      const started = performance.now();
      await assert.rejects(
        loadBackbone(`${base}/${route}/tiny.onnx`, { device: 'cpu', cacheDir, progress: false, downloadTimeoutMs: 300 }),
        (error: Error) => error instanceof FailureError && /IMGPIPE_DOWNLOAD_TIMEOUT_MS/.test(error.message),
      );
      assert.ok(performance.now() - started < 5_000, `${route}: gave up in ${performance.now() - started} ms`);
      assert.deepEqual(await listFiles(cacheDir), []);
    }
  });

  it('a download over the size cap is cut off as it streams', async () => {
    const cacheDir = join(temp.path, 'cache-big');
    await assert.rejects(
      loadBackbone(`${base}/big/huge.onnx`, { device: 'cpu', cacheDir, progress: false, maxDownloadBytes: 1024 * 1024 }),
      (error: Error) => error instanceof FailureError && /over the download limit of 1048576 bytes/.test(error.message),
    );
    assert.deepEqual(await listFiles(cacheDir), []);
  });

  it('records the sha256 of each download beside it and refuses a cached file that changed', async () => {
    const cacheDir = join(temp.path, 'cache-hash');
    const url = `${base}/ok/tiny.onnx`;
    const first = await loadBackbone(url, { device: 'cpu', cacheDir, progress: false });
    await first.dispose();
    const files = await listFiles(cacheDir);
    assert.deepEqual(
      files.map((f) => f.split('/').pop()),
      ['tiny.onnx', 'tiny.onnx.sha256'],
    );
    const file = join(cacheDir, files[0]!);
    assert.equal((await readFile(`${file}.sha256`, 'utf8')).trim(), sha256(onnx));
    assert.equal(first.info.sha256, sha256(onnx), 'the card records the same hash');
    const tampered = Buffer.from(onnx);
    tampered[tampered.length - 1] = tampered.at(-1)! ^ 0xff;
    await writeFile(file, tampered);
    await assert.rejects(
      loadBackbone(url, { device: 'cpu', cacheDir, progress: false }),
      (error: Error) => error instanceof FailureError && /does not match/.test(error.message),
    );
  });

  it('a built-in with a pinned sha256 refuses a download or a cached file that differs', async () => {
    const cacheDir = join(temp.path, 'cache-pinned');
    const saved = { url: process.env.IMGPIPE_RESNET50_URL, pin: BUILTIN_BACKBONES.resnet50!.sha256, bytes: BUILTIN_BACKBONES.resnet50!.bytes };
    process.env.IMGPIPE_RESNET50_URL = `${base}/ok/resnet50.onnx`;
    BUILTIN_BACKBONES.resnet50!.sha256 = '0'.repeat(64);
    BUILTIN_BACKBONES.resnet50!.bytes = onnx.length;
    try {
      await assert.rejects(loadBackbone('resnet50', { device: 'cpu', cacheDir, progress: false }), /does not match the pinned/);
      assert.deepEqual(await listFiles(cacheDir), []);
      await writeFile(builtinPath('resnet50', cacheDir), onnx); // put there by hand
      await assert.rejects(loadBackbone('resnet50', { device: 'cpu', cacheDir, progress: false }), /pinned for this backbone/);
      BUILTIN_BACKBONES.resnet50!.sha256 = sha256(onnx);
      const backbone = await loadBackbone('resnet50', { device: 'cpu', cacheDir, progress: false });
      await backbone.dispose();
    } finally {
      if (saved.url === undefined) delete process.env.IMGPIPE_RESNET50_URL;
      else process.env.IMGPIPE_RESNET50_URL = saved.url;
      BUILTIN_BACKBONES.resnet50!.sha256 = saved.pin;
      BUILTIN_BACKBONES.resnet50!.bytes = saved.bytes;
    }
  });
});
