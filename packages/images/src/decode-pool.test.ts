// DecodePool: prep-data's decode threads give decodeToTensor's pixels and its rejections, reason for reason.
import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { readFile, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { after, before, test } from 'node:test';
import { bombPng, buildPhotoSet, makeTempDir, type TempDir } from '@imgpipe/test-utils';
import sharp from 'sharp';
import { DecodePool, decodeToTensor, identifyWhileStarting, ImageRejected, type DecodeOptions } from '@imgpipe/images';
import { identifyFile } from '@imgpipe/images/file-identity';

let temp: TempDir;
let pool: DecodePool;
before(async () => {
  temp = await makeTempDir('imgpipe-decode-pool-');
  pool = await DecodePool.start(2);
});
after(async () => {
  await pool.close();
  await temp.remove();
});

test('the pool decodes photos, EXIF-rotated JPEGs and PNGs to the same bytes as decodeToTensor', async () => {
  const photos = await buildPhotoSet({ dir: join(temp.path, 'photos'), count: 12 });
  const rotated = join(temp.path, 'rotated.jpg');
  await writeFile(rotated, await sharp(photos[0]!).withMetadata({ orientation: 6 }).jpeg().toBuffer());
  const png = join(temp.path, 'photo.png');
  await writeFile(png, await sharp(photos[1]!).png().toBuffer());
  for (const options of [
    { size: 64, fit: 'fill' },
    { size: 96, fit: 'cover' },
  ] satisfies DecodeOptions[]) {
    const paths = [...photos, rotated, png];
    const pooled = await Promise.all(paths.map((path) => pool.decode(path, options)));
    // Written by the threads into shared memory: one buffer per image, next to each other, none overwritten.
    const bytes = options.size * options.size * 3;
    const shared = new SharedArrayBuffer(paths.length * bytes);
    const targets = paths.map((_, i) => new Uint8Array(shared, i * bytes, bytes));
    const intoShared = await Promise.all(paths.map((path, i) => pool.decode(path, options, targets[i])));
    for (const [index, path] of paths.entries()) {
      const direct = await decodeToTensor(path, options);
      assert.equal(Buffer.compare(Buffer.from(pooled[index]!), Buffer.from(direct)), 0, `${path} ${options.fit}`);
      assert.equal(intoShared[index], targets[index], 'the answer is the shared buffer');
      assert.equal(Buffer.compare(Buffer.from(targets[index]!), Buffer.from(direct)), 0, `${path} ${options.fit}, into shared memory`);
    }
  }
});

test('rejections cross the thread with their reason, source, detail and hint', async () => {
  const good = await sharp({ create: { width: 300, height: 200, channels: 3, background: '#808080' } })
    .jpeg()
    .toBuffer();
  const files: Record<string, Uint8Array | string> = {
    'empty.jpg': new Uint8Array(0),
    'text.jpg': 'not an image at all\n',
    'truncated.jpg': good.subarray(0, good.length >> 1),
    'bomb.png': bombPng(40_000, 40_000),
    'big.jpg': good,
  };
  for (const [name, bytes] of Object.entries(files)) await writeFile(join(temp.path, name), bytes);
  execFileSync('mkfifo', [join(temp.path, 'fifo.jpg')]);
  for (const [name, maxPixels] of [
    ['missing.jpg'],
    ['empty.jpg'],
    ['text.jpg'],
    ['truncated.jpg'],
    ['bomb.png'],
    ['big.jpg', 50_000],
    ['fifo.jpg'],
  ] as const) {
    const path = join(temp.path, name);
    const options = { size: 8, fit: 'fill' as const, ...(maxPixels ? { maxPixels } : {}) };
    const expected = await decodeToTensor(path, options).then(
      () => assert.fail(`${name} decoded`),
      (error: unknown) => error as ImageRejected,
    );
    await assert.rejects(pool.decode(path, options), (error: unknown) => {
      assert.ok(error instanceof ImageRejected, name);
      assert.deepEqual(
        [error.reason, error.source, error.detail, error.hint, error.exitCode],
        [expected.reason, expected.source, expected.detail, expected.hint, 2],
        name,
      );
      return true;
    });
  }
  // The pool still answers after rejections.
  assert.equal((await pool.decode(join(temp.path, 'big.jpg'), { size: 8, fit: 'fill' })).length, 8 * 8 * 3);
});

test('decode into memory that is not shared is refused before anything is sent', () => {
  assert.throws(() => pool.decode('x.jpg', { size: 8, fit: 'fill' }, new Uint8Array(8 * 8 * 3)), /SharedArrayBuffer/);
});

test('identifyWhileStarting: the same identities whether this thread, the threads or both hash the files', async () => {
  const photos = await buildPhotoSet({ dir: join(temp.path, 'identify'), count: 40 });
  const duplicate = join(temp.path, 'identify', 'copy.jpg');
  await writeFile(duplicate, await readFile(photos[0]!));
  const paths = [...photos, duplicate, join(temp.path, 'nowhere.jpg'), temp.path];
  const expected = paths.map(identifyFile);
  assert.equal(expected[photos.length]!.content, expected[0]!.content, 'a copy has the same content hash');
  assert.equal(expected.at(-2)!.content, undefined, 'a missing file has no content');
  assert.equal(expected.at(-1)!.content, undefined, 'a directory has no content');
  let counted = 0;
  const never = new Promise<DecodePool>(() => undefined);
  assert.deepEqual(await identifyWhileStarting(paths, never, () => counted++), expected, 'threads still starting: all hashed here');
  assert.equal(counted, paths.length);
  assert.deepEqual(await identifyWhileStarting(paths, Promise.resolve(pool)), expected, 'threads ready');
  const failed = Promise.reject(new Error('no threads'));
  assert.deepEqual(await identifyWhileStarting(paths, failed), expected, 'threads that failed to start');
  const starting = DecodePool.start(1);
  try {
    assert.deepEqual(await identifyWhileStarting(paths, starting), expected, 'threads that start part way');
  } finally {
    await (await starting).close();
  }
});

test('decodeWithIdentity: the pixels or the rejection of decode, with the identity identifyFile gives', async () => {
  const photos = await buildPhotoSet({ dir: join(temp.path, 'with-identity'), count: 3 });
  const link = join(temp.path, 'with-identity', 'link.jpg');
  await symlink(photos[0]!, link);
  const text = join(temp.path, 'with-identity', 'text.jpg');
  await writeFile(text, 'not an image');
  const empty = join(temp.path, 'with-identity', 'empty.jpg');
  await writeFile(empty, '');
  const options: DecodeOptions = { size: 32, fit: 'fill' };
  for (const path of [...photos, link, text, empty, join(temp.path, 'nowhere.jpg'), temp.path]) {
    const { identity, outcome } = await pool.decodeWithIdentity(path, options);
    assert.deepEqual(identity, identifyFile(path), path);
    const plain = await pool.decode(path, options).catch((error: unknown) => error);
    if (plain instanceof ImageRejected) {
      assert.ok('rejected' in outcome, path);
      assert.deepEqual([outcome.rejected.reason, outcome.rejected.detail], [plain.reason, plain.detail], path);
    } else assert.deepEqual('pixels' in outcome && outcome.pixels, plain, path);
  }
});

test('closing the pool, or process.exit, while threads are inside libjpeg-turbo ends the process normally', async () => {
  // Ending a thread inside a native decode aborted the whole process (exit 134, "terminate called after throwing an
  // instance of 'Napi::Error'"): prep-data on a full disk or on SIGTERM, about 2 runs in 5 here.
  const photos = await buildPhotoSet({ dir: join(temp.path, 'stopped'), count: 20 });
  const images = pathToFileURL(fileURLToPath(new URL('../dist/index.js', import.meta.url))).href;
  const script = join(temp.path, 'stop-mid-decode.mjs');
  await writeFile(
    script,
    `import { DecodePool } from ${JSON.stringify(images)};
const [how, wait] = process.argv.slice(2);
const pool = await DecodePool.start(2);
for (const path of ${JSON.stringify(photos)}.concat(${JSON.stringify(photos)})) pool.decode(path, { size: 224, fit: 'fill' }).catch(() => {});
await new Promise((resolve) => setTimeout(resolve, Number(wait)));
if (how === 'exit') process.exit(3);
await pool.close();`,
  );
  const run = promisify(execFile);
  for (const how of ['close', 'exit']) {
    const waits = Array.from({ length: 10 }, (_, i) => i * 3);
    const outcomes = await Promise.all(
      waits.map((wait) =>
        run(process.execPath, [script, how, String(wait)]).then(
          () => ({ code: 0, stderr: '' }),
          (error: { code: number; stderr: string }) => error,
        ),
      ),
    );
    for (const [i, { code, stderr }] of outcomes.entries()) assert.equal(code, how === 'exit' ? 3 : 0, `${how} after ${waits[i]} ms: ${stderr}`);
  }
});
