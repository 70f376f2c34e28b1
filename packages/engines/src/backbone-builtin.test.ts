import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { buildTinyConvBackbone, listFilesRecursive, makeTempDir, type TempDir } from '@imgpipe/test-utils';
import { loadBackbone } from '@imgpipe/engines';
import { BUILTIN_BACKBONES, builtinPath, builtinSources, formatBuiltinList } from '@imgpipe/engines/backbone-builtin';
import { FailureError, silentLogger, sha256 } from '@imgpipe/kit';

const listFiles = (dir: string) => listFilesRecursive(dir).catch(() => [] as string[]);
const HF_PATH = '/onnxmodelzoo/legacy_models/resolve/main/validated/vision/classification/resnet/model/resnet50-v1-12.onnx';

/** Run fn with resnet50 pinned to `bytes` (the test's own file) and its URL variable and HF_ENDPOINT set as given. */
async function withTestPin<T>(bytes: Buffer, env: { urls?: string; hf?: string }, fn: () => Promise<T>): Promise<T> {
  const entry = BUILTIN_BACKBONES.resnet50!;
  const saved = { sha256: entry.sha256, bytes: entry.bytes, urls: process.env.IMGPIPE_RESNET50_URL, hf: process.env.HF_ENDPOINT };
  entry.sha256 = sha256(bytes);
  entry.bytes = bytes.length;
  const set = (key: string, value: string | undefined) => {
    if (value === undefined) delete process.env[key];
    else process.env[key] = value;
  };
  set('IMGPIPE_RESNET50_URL', env.urls);
  set('HF_ENDPOINT', env.hf);
  try {
    return await fn();
  } finally {
    entry.sha256 = saved.sha256;
    entry.bytes = saved.bytes;
    set('IMGPIPE_RESNET50_URL', saved.urls);
    set('HF_ENDPOINT', saved.hf);
  }
}

describe('built-in backbones: pinned, from several sources', () => {
  let temp: TempDir;
  let server: Server;
  let base: string;
  let onnx: Buffer;
  const hits: string[] = [];

  before(async () => {
    temp = await makeTempDir('imgpipe-builtin-');
    onnx = await readFile((await buildTinyConvBackbone({ dir: join(temp.path, 'onnx'), inputSize: 8, format: 'onnx' })).path);
    const flipped = Buffer.from(onnx);
    flipped[flipped.length >> 1] = flipped[flipped.length >> 1]! ^ 0x01;
    server = createServer((request, response) => {
      const url = request.url!;
      hits.push(url);
      if (url === HF_PATH) {
        response.writeHead(302, { location: '/cdn/xet-bridge/abc123' }).end();
      } else if (url === '/cdn/xet-bridge/abc123') {
        response.writeHead(200, { 'content-length': String(onnx.length) }).end(onnx);
      } else if (url.startsWith('/lfs/')) {
        // What a raw GitHub URL gives for an LFS file that is no longer served: the pointer text.
        response.end(`version https://git-lfs.github.com/spec/v1\noid sha256:${sha256(onnx)}\nsize ${onnx.length}\n`);
      } else if (url.startsWith('/lfs-chunked/')) {
        response.writeHead(200); // no Content-Length: refused by size or hash after streaming
        response.end('version https://git-lfs.github.com/spec/v1\n');
      } else if (url.startsWith('/flipped/')) {
        response.writeHead(200, { 'content-length': String(flipped.length) }).end(flipped);
      } else if (url.startsWith('/stall/')) {
        response.writeHead(200, { 'content-length': String(onnx.length) });
        response.write(onnx.subarray(0, 10)); // then nothing
      } else {
        response.writeHead(404).end();
      }
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
    await temp.remove();
  });

  it('pins four built-ins, each with a 64-hex sha256 and a positive size', () => {
    assert.deepEqual(Object.keys(BUILTIN_BACKBONES).sort(), ['efficientnet-lite4', 'mobilenetv2', 'resnet50', 'resnet50-int8']);
    for (const [name, builtin] of Object.entries(BUILTIN_BACKBONES)) {
      assert.match(builtin.sha256, /^[0-9a-f]{64}$/, name);
      assert.ok(Number.isInteger(builtin.bytes) && builtin.bytes > 0, name);
      assert.ok(builtin.featureDim > 0 && builtin.top1 > 0 && builtin.top1 < 100, name);
    }
    assert.equal(BUILTIN_BACKBONES.resnet50!.sha256, '3f03fdef724b22947eed826f1eef1dc5c34151bb4c37d634f1db89dfa2dd1526');
    assert.equal(BUILTIN_BACKBONES.resnet50!.bytes, 102_576_593);
    assert.equal(BUILTIN_BACKBONES['efficientnet-lite4']!.preprocess, 'efficientnet-lite');
  });

  it('tries Hugging Face first, then GitHub; HF_ENDPOINT moves the first, the URL variable replaces both', () => {
    assert.deepEqual(builtinSources('mobilenetv2', {}), [
      'https://huggingface.co/onnxmodelzoo/legacy_models/resolve/main/validated/vision/classification/mobilenet/model/mobilenetv2-12.onnx',
      'https://github.com/onnx/models/raw/main/validated/vision/classification/mobilenet/model/mobilenetv2-12.onnx',
    ]);
    assert.equal(builtinSources('resnet50', { HF_ENDPOINT: 'https://hf-mirror.example/' })[0], `https://hf-mirror.example${HF_PATH}`);
    assert.deepEqual(builtinSources('resnet50', { IMGPIPE_RESNET50_URL: ' http://a/x.onnx  http://b/x.onnx ' }), [
      'http://a/x.onnx',
      'http://b/x.onnx',
    ]);
  });

  it('skips an LFS pointer, a flipped byte and a stall, takes the pinned file behind a redirect, and caches only it', async () => {
    const cacheDir = join(temp.path, 'cache-sources');
    const urls = ['lfs', 'lfs-chunked', 'flipped', 'stall'].map((route) => `${base}/${route}/resnet50-v1-12.onnx`);
    await withTestPin(onnx, { urls: urls.join(' '), hf: base }, async () => {
      // The URL variable replaces the published sources: HF_ENDPOINT is not tried, so every mirror fails.
      await assert.rejects(
        loadBackbone('resnet50', { device: 'cpu', cacheDir, progress: false, downloadTimeoutMs: 300, log: silentLogger }),
        (error: Error) => {
          assert.ok(error instanceof FailureError);
          for (const url of urls) assert.ok(error.message.includes(url), `names ${url}`);
          assert.match(error.message, /not the \d+ pinned/); // the pointer text, told by its Content-Length
          assert.match(error.message, /does not match the pinned/); // the flipped byte
          assert.match(error.message, /IMGPIPE_DOWNLOAD_TIMEOUT_MS/); // the stall
          assert.ok(error.message.includes(`${onnx.length} bytes, sha256 ${sha256(onnx)}`), 'says which file to put there by hand');
          assert.ok(error.message.includes(builtinPath('resnet50', cacheDir)));
          return true;
        },
      );
      assert.deepEqual(await listFiles(cacheDir), [], 'nothing refused was cached');
    });
    await withTestPin(onnx, { urls: [...urls, `${base}${HF_PATH}`].join(' ') }, async () => {
      const backbone = await loadBackbone('resnet50', { device: 'cpu', cacheDir, progress: false, downloadTimeoutMs: 300, log: silentLogger });
      assert.equal(backbone.info.source, `${base}${HF_PATH}`);
      assert.equal(backbone.info.sha256, sha256(onnx));
      assert.equal(backbone.info.feature_layer, 'features');
      await backbone.dispose();
    });
    assert.deepEqual(await listFiles(cacheDir), ['backbones/resnet50-v1-12.onnx', 'backbones/resnet50-v1-12.onnx.sha256']);
    assert.ok(hits.includes('/cdn/xet-bridge/abc123'), 'followed the redirect');
  });

  it('HF_ENDPOINT serves the default path; every later load verifies the cached file against the pin', async () => {
    const cacheDir = join(temp.path, 'cache-hf');
    await withTestPin(onnx, { hf: base }, async () => {
      const before = hits.length;
      const backbone = await loadBackbone('resnet50', { device: 'cpu', cacheDir, progress: false });
      await backbone.dispose();
      assert.deepEqual(hits.slice(before), [HF_PATH, '/cdn/xet-bridge/abc123']);
      const again = await loadBackbone('resnet50', { device: 'cpu', cacheDir, progress: false });
      await again.dispose();
      assert.equal(hits.length, before + 2, 'the second load downloads nothing');
      const path = builtinPath('resnet50', cacheDir);
      const tampered = Buffer.from(onnx);
      tampered[5] = tampered[5]! ^ 0x01;
      await writeFile(path, tampered);
      await writeFile(`${path}.sha256`, `${sha256(tampered)}\n`); // even with its record rewritten to match
      await assert.rejects(loadBackbone('resnet50', { device: 'cpu', cacheDir, progress: false }), /pinned for this backbone/);
      await writeFile(path, Buffer.concat([onnx, Buffer.from([0])]));
      await assert.rejects(loadBackbone('resnet50', { device: 'cpu', cacheDir, progress: false }), /bytes, not the \d+ pinned/);
    });
  });

  it('--list-backbones shows each built-in, whether it is cached, and its sources', async () => {
    const cacheDir = join(temp.path, 'cache-list');
    const empty = await formatBuiltinList(cacheDir);
    for (const name of Object.keys(BUILTIN_BACKBONES)) assert.match(empty, new RegExp(`^${name}( \\(default\\))?: `, 'm'));
    assert.equal(empty.match(/not cached/g)?.length, 4);
    assert.match(empty, /ImageNet top-1 80\.4%/);
    assert.match(empty, /source 1: https:\/\/huggingface\.co\/onnxmodelzoo\/legacy_models\/resolve\/main\//);
    await withTestPin(onnx, { hf: base }, async () => {
      const backbone = await loadBackbone('resnet50', { device: 'cpu', cacheDir, progress: false });
      await backbone.dispose();
    });
    const listed = await formatBuiltinList(cacheDir);
    assert.match(listed, new RegExp(`cached at ${builtinPath('resnet50', cacheDir).replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}`));
  });
});
