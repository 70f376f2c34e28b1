import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { buildTinyConvBackbone, listFilesRecursive, makeTempDir, type TempDir } from '@imgpipe/test-utils';
import { loadBackbone } from '@imgpipe/engines';
import { BUILTIN_BACKBONES, builtinPath } from '@imgpipe/engines/backbone-builtin';
import { FailureError, InputError, sha256 } from '@imgpipe/kit';

/** Every file under dir, relative; none when it does not exist. */
const listFiles = (dir: string) => listFilesRecursive(dir).catch(() => [] as string[]);

describe('backbones over http(s), cached', () => {
  let temp: TempDir;
  let server: Server;
  let base: string;
  const requests: string[] = [];
  const routes = new Map<string, Buffer>();

  before(async () => {
    temp = await makeTempDir('imgpipe-fetch-');
    const onnx = await buildTinyConvBackbone({ dir: join(temp.path, 'onnx'), inputSize: 8, format: 'onnx' });
    const tfjs = await buildTinyConvBackbone({ dir: join(temp.path, 'tfjs'), inputSize: 8, format: 'tfjs-layers' });
    routes.set('/models/tiny.onnx', await readFile(onnx.path));
    routes.set('/tfjs/model.json', await readFile(tfjs.path));
    routes.set('/tfjs/weights.bin', await readFile(join(tfjs.dir, 'weights.bin')));
    routes.set('/bad/broken.onnx', Buffer.from('this is not a protobuf at all, just text'));
    server = createServer((request, response) => {
      requests.push(request.url!);
      if (request.url === '/cut/short.onnx') {
        // Promise more than is sent, then drop the connection.
        response.writeHead(200, { 'content-length': '100000' });
        response.write(routes.get('/models/tiny.onnx')!.subarray(0, 50));
        setTimeout(() => response.socket?.destroy(), 20);
        return;
      }
      const body = routes.get(request.url!);
      if (!body) {
        response.writeHead(404).end('not found');
        return;
      }
      response.writeHead(200, { 'content-length': String(body.length) }).end(body);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(async () => {
    await new Promise((resolve) => server.close(resolve));
    await temp.remove();
  });

  it('downloads an ONNX backbone once into the cache, then loads it from there', async () => {
    const cacheDir = join(temp.path, 'cache-onnx');
    const url = `${base}/models/tiny.onnx`;
    const first = await loadBackbone(url, { device: 'cpu', featureLayer: 'features', preprocess: 'none', cacheDir, progress: false });
    assert.equal(first.info.source, url);
    assert.equal(first.info.feature_dim, 8);
    assert.equal(requests.filter((r) => r === '/models/tiny.onnx').length, 1);
    const files = await listFiles(cacheDir);
    assert.equal(files.length, 2);
    assert.match(files[0]!, /^backbones\/[0-9a-f]{16}\/tiny\.onnx$/);
    assert.equal(files[1], `${files[0]}.sha256`);
    const second = await loadBackbone(url, { device: 'cpu', featureLayer: 'features', preprocess: 'none', cacheDir, progress: false });
    assert.equal(requests.filter((r) => r === '/models/tiny.onnx').length, 1);
    assert.equal(second.info.sha256, first.info.sha256);
    await first.dispose();
    await second.dispose();
  });

  it('downloads a TF.js model.json and its weight files', async () => {
    const cacheDir = join(temp.path, 'cache-tfjs');
    const backbone = await loadBackbone(`${base}/tfjs/model.json`, {
      device: 'wasm',
      featureLayer: 'features',
      preprocess: 'none',
      cacheDir,
      workers: 1,
      progress: false,
    });
    assert.equal(backbone.info.format, 'tfjs-layers');
    assert.equal(backbone.info.feature_dim, 8);
    const files = await listFiles(cacheDir);
    assert.deepEqual(
      files.map((f) => f.split('/').pop()),
      ['model.json', 'model.json.sha256', 'weights.bin', 'weights.bin.sha256'],
    );
    await backbone.dispose();
  });

  it('a download that does not parse is rejected and leaves nothing in the cache', async () => {
    const cacheDir = join(temp.path, 'cache-bad');
    await assert.rejects(loadBackbone(`${base}/bad/broken.onnx`, { device: 'cpu', cacheDir, progress: false }), InputError);
    assert.deepEqual(await listFiles(cacheDir), []);
  });

  it('a connection dropped mid-download is a failure and leaves nothing in the cache', async () => {
    const cacheDir = join(temp.path, 'cache-cut');
    await assert.rejects(loadBackbone(`${base}/cut/short.onnx`, { device: 'cpu', cacheDir, progress: false }), FailureError);
    assert.deepEqual(await listFiles(cacheDir), []);
    await assert.rejects(loadBackbone(`${base}/missing.onnx`, { device: 'cpu', cacheDir, progress: false }), /HTTP 404/);
  });

  it('the built-in resnet50 downloads from its URL into <cache>/backbones and uses the global-pool output', async () => {
    const cacheDir = join(temp.path, 'cache-builtin');
    const saved = process.env.IMGPIPE_RESNET50_URL;
    const pin = { sha256: BUILTIN_BACKBONES.resnet50!.sha256, bytes: BUILTIN_BACKBONES.resnet50!.bytes };
    const tiny = routes.get('/models/tiny.onnx')!;
    process.env.IMGPIPE_RESNET50_URL = `${base}/models/tiny.onnx`;
    Object.assign(BUILTIN_BACKBONES.resnet50!, { sha256: sha256(tiny), bytes: tiny.length }); // a test pin: the check stays on
    try {
      const backbone = await loadBackbone('resnet50', { device: 'cpu', cacheDir, progress: false });
      assert.equal(backbone.files[0], builtinPath('resnet50', cacheDir));
      assert.equal(backbone.info.name, 'resnet50');
      assert.equal(backbone.info.preprocess.name, 'torch');
      assert.equal(backbone.info.feature_layer, 'features'); // the Flatten after GlobalAveragePool, found by op type
      assert.equal(backbone.info.feature_dim, 8);
      await backbone.dispose();
    } finally {
      Object.assign(BUILTIN_BACKBONES.resnet50!, pin);
      if (saved === undefined) delete process.env.IMGPIPE_RESNET50_URL;
      else process.env.IMGPIPE_RESNET50_URL = saved;
    }
  });

  it('offline, the built-in says how to get the file and where to put it', async () => {
    const cacheDir = join(temp.path, 'cache-offline');
    const saved = process.env.IMGPIPE_RESNET50_URL;
    process.env.IMGPIPE_RESNET50_URL = 'http://127.0.0.1:9/resnet50-v1-12.onnx'; // the discard port: connection refused
    try {
      await assert.rejects(loadBackbone('resnet50', { device: 'cpu', cacheDir, progress: false }), (error: Error) => {
        assert.ok(error instanceof FailureError);
        assert.ok(error.message.includes(builtinPath('resnet50', cacheDir)));
        assert.match(error.message, /curl -fL -o/);
        assert.match(error.message, /torch\.onnx\.export/);
        assert.match(error.message, /--backbone FILE/);
        return true;
      });
      assert.deepEqual(await listFiles(cacheDir), []);
    } finally {
      if (saved === undefined) delete process.env.IMGPIPE_RESNET50_URL;
      else process.env.IMGPIPE_RESNET50_URL = saved;
    }
  });
});
