import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdir, open, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { bombPng, makeTempDir, type TempDir } from '@imgpipe/test-utils';
import sharp from 'sharp';
import { decodeToTensor, ImageRejected, imageDimensions, READ_WHOLE_MAX_BYTES, type RejectReason } from '@imgpipe/images';

let temp: TempDir;
before(async () => (temp = await makeTempDir('imgpipe-image-')));
after(() => temp.remove());

/** A known picture as raw RGB: a smooth diagonal gradient with a solid block, no compression involved. */
function knownPixels(width: number, height: number): Uint8Array {
  const data = new Uint8Array(width * height * 3);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const i = (y * width + x) * 3;
      const block = x > width * 0.5 && x < width * 0.8 && y > height * 0.2 && y < height * 0.6;
      data[i] = block ? 20 : Math.round((255 * x) / (width - 1));
      data[i + 1] = block ? 200 : Math.round((255 * y) / (height - 1));
      data[i + 2] = block ? 40 : 128;
    }
  }
  return data;
}

/** Independent reference: area-average resize in plain JS (exact for integer factors). */
function areaResize(data: Uint8Array, width: number, height: number, size: number): Float64Array {
  const out = new Float64Array(size * size * 3);
  const fx = width / size;
  const fy = height / size;
  for (let oy = 0; oy < size; oy++) {
    for (let ox = 0; ox < size; ox++) {
      for (let c = 0; c < 3; c++) {
        let sum = 0;
        let n = 0;
        for (let y = Math.floor(oy * fy); y < Math.floor((oy + 1) * fy); y++) {
          for (let x = Math.floor(ox * fx); x < Math.floor((ox + 1) * fx); x++) {
            sum += data[(y * width + x) * 3 + c]!;
            n++;
          }
        }
        out[(oy * size + ox) * 3 + c] = sum / n;
      }
    }
  }
  return out;
}

function meanAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let total = 0;
  for (let i = 0; i < a.length; i++) total += Math.abs(a[i]! - b[i]!);
  return total / a.length;
}

function pixel(data: Uint8Array, size: number, x: number, y: number): [number, number, number] {
  const i = (y * size + x) * 3;
  return [data[i]!, data[i + 1]!, data[i + 2]!];
}

test('pixels of a known image match an independent decode-and-resize (PNG exactly encoded, JPEG lossy)', async () => {
  const [width, height, size] = [128, 96, 32];
  const raw = knownPixels(width, height);
  const reference = areaResize(raw, width, height, size);
  const png = await sharp(raw, { raw: { width, height, channels: 3 } })
    .png()
    .toBuffer();
  const jpeg = await sharp(raw, { raw: { width, height, channels: 3 } })
    .jpeg({ quality: 95 })
    .toBuffer();
  const fromPng = await decodeToTensor(png, { size, fit: 'fill' });
  const fromJpeg = await decodeToTensor(jpeg, { size, fit: 'fill' });
  assert.equal(fromPng.length, size * size * 3);
  assert.ok(meanAbsDiff(fromPng, reference) < 3, `png mean abs diff ${meanAbsDiff(fromPng, reference)}`);
  assert.ok(meanAbsDiff(fromJpeg, reference) < 5, `jpeg mean abs diff ${meanAbsDiff(fromJpeg, reference)}`);
  // cover keeps the centre 96x96 of the 128x96 picture.
  const cropped = new Uint8Array(96 * 96 * 3);
  for (let y = 0; y < 96; y++) cropped.set(raw.subarray((y * width + 16) * 3, (y * width + 112) * 3), y * 96 * 3);
  const cover = await decodeToTensor(png, { size, fit: 'cover' });
  assert.ok(meanAbsDiff(cover, areaResize(cropped, 96, 96, size)) < 3);
  assert.ok(meanAbsDiff(cover, reference) > 5, 'cover differs from fill');
});

test('every common format decodes to the same picture: JPEG, PNG, WebP, GIF (first frame), TIFF', async () => {
  const raw = knownPixels(64, 64);
  const base = sharp(raw, { raw: { width: 64, height: 64, channels: 3 } });
  const expected = await decodeToTensor(await base.clone().png().toBuffer(), { size: 16, fit: 'fill' });
  const encoded = {
    jpeg: await base.clone().jpeg({ quality: 95 }).toBuffer(),
    webp: await base.clone().webp({ lossless: true }).toBuffer(),
    gif: await base.clone().gif().toBuffer(),
    tiff: await base.clone().tiff().toBuffer(),
  };
  for (const [format, bytes] of Object.entries(encoded)) {
    const path = join(temp.path, `known.${format}`);
    await writeFile(path, bytes);
    const decoded = await decodeToTensor(path, { size: 16, fit: 'fill' });
    assert.ok(meanAbsDiff(decoded, expected) < (format === 'gif' ? 12 : 4), `${format}: ${meanAbsDiff(decoded, expected)}`);
  }
  // An animated GIF: the first frame is red, the second blue; the first frame wins.
  const frames = Buffer.concat([Buffer.alloc(16 * 16 * 3, 0), Buffer.alloc(16 * 16 * 3, 0)]);
  for (let i = 0; i < 16 * 16; i++) {
    frames[i * 3] = 255;
    frames[16 * 16 * 3 + i * 3 + 2] = 255;
  }
  const gif = await sharp(frames, { raw: { width: 16, height: 32, channels: 3, pageHeight: 16 } as never })
    .gif()
    .toBuffer();
  const first = await decodeToTensor(gif, { size: 4, fit: 'fill' });
  const [r, , b] = pixel(first, 4, 1, 1);
  assert.ok(r > 200 && b < 60, `first frame red, got ${r},${b}`);
});

test('EXIF orientation is applied: a stored top-red/bottom-blue picture with orientation 6 comes out left-blue/right-red', async () => {
  const [width, height] = [40, 20];
  const raw = Buffer.alloc(width * height * 3);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) raw.set(y < height / 2 ? [230, 20, 20] : [20, 20, 230], (y * width + x) * 3);
  }
  const plain = await sharp(raw, { raw: { width, height, channels: 3 } })
    .jpeg({ quality: 95 })
    .toBuffer();
  const rotated = await sharp(raw, { raw: { width, height, channels: 3 } })
    .jpeg({ quality: 95 })
    .withMetadata({ orientation: 6 })
    .toBuffer();
  assert.equal((await sharp(rotated).metadata()).orientation, 6);
  const size = 8;
  const upright = await decodeToTensor(plain, { size, fit: 'fill' });
  assert.ok(pixel(upright, size, 4, 1)[0] > 180 && pixel(upright, size, 4, 6)[2] > 180, 'no EXIF: top red, bottom blue');
  const turned = await decodeToTensor(rotated, { size, fit: 'fill' });
  assert.ok(pixel(turned, size, 1, 4)[2] > 180, `left is blue, got ${pixel(turned, size, 1, 4)}`);
  assert.ok(pixel(turned, size, 6, 4)[0] > 180, `right is red, got ${pixel(turned, size, 6, 4)}`);
});

test('grayscale, alpha, 16-bit and CMYK inputs all become 3-channel sRGB', async () => {
  const gray = await sharp(Buffer.alloc(32 * 32, 90), { raw: { width: 32, height: 32, channels: 1 } })
    .png()
    .toBuffer();
  const g = await decodeToTensor(gray, { size: 8, fit: 'fill' });
  assert.equal(g.length, 8 * 8 * 3);
  assert.deepEqual(pixel(g, 8, 3, 3), [90, 90, 90]);

  // Left half opaque red, right half fully transparent (whatever colour it stores): transparent becomes white.
  const rgba = Buffer.alloc(32 * 32 * 4);
  for (let i = 0; i < 32 * 32; i++) rgba.set(i % 32 < 16 ? [255, 0, 0, 255] : [0, 0, 0, 0], i * 4);
  const alpha = await decodeToTensor(
    await sharp(rgba, { raw: { width: 32, height: 32, channels: 4 } })
      .png()
      .toBuffer(),
    { size: 8, fit: 'fill' },
  );
  const [red, white] = [pixel(alpha, 8, 1, 4), pixel(alpha, 8, 6, 4)];
  assert.ok(red[0] > 250 && red[1] < 8 && red[2] < 8, `opaque red stays red, got ${red}`);
  assert.ok(
    white.every((v) => v > 247),
    `transparent becomes white, got ${white}`,
  );
  // Half-transparent red over white.
  const half = Buffer.alloc(16 * 16 * 4);
  for (let i = 0; i < 16 * 16; i++) half.set([255, 0, 0, 128], i * 4);
  const blended = pixel(
    await decodeToTensor(
      await sharp(half, { raw: { width: 16, height: 16, channels: 4 } })
        .png()
        .toBuffer(),
      { size: 4, fit: 'fill' },
    ),
    4,
    2,
    2,
  );
  assert.ok(blended[0] > 250 && Math.abs(blended[1] - 127) < 4 && Math.abs(blended[2] - 127) < 4, `blend ${blended}`);

  const deep = await sharp(knownPixels(32, 32), { raw: { width: 32, height: 32, channels: 3 } })
    .toColourspace('rgb16')
    .png()
    .toBuffer();
  assert.equal((await sharp(deep).metadata()).depth, 'ushort');
  const d = await decodeToTensor(deep, { size: 8, fit: 'fill' });
  assert.equal(d.length, 8 * 8 * 3);
  assert.ok(meanAbsDiff(d, areaResize(knownPixels(32, 32), 32, 32, 8)) < 4);

  const cmyk = await sharp(Buffer.alloc(32 * 32 * 3, 200), { raw: { width: 32, height: 32, channels: 3 } })
    .toColourspace('cmyk')
    .jpeg({ quality: 95 })
    .toBuffer();
  assert.equal((await sharp(cmyk).metadata()).space, 'cmyk');
  const c = pixel(await decodeToTensor(cmyk, { size: 4, fit: 'fill' }), 4, 2, 2);
  assert.ok(
    c.every((v) => Math.abs(v - 200) < 20),
    `cmyk round trip ${c}`,
  );
});

test('bad inputs are rejected with a typed reason', async () => {
  const good = await sharp(knownPixels(300, 200), { raw: { width: 300, height: 200, channels: 3 } })
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
  const cases: [string, RejectReason, number?][] = [
    ['missing.jpg', 'missing'],
    ['empty.jpg', 'empty'],
    ['text.jpg', 'not-an-image'],
    ['truncated.jpg', 'unreadable'],
    ['bomb.png', 'decompression-bomb'],
    ['big.jpg', 'too-large', 50_000],
  ];
  for (const [name, reason, maxPixels] of cases) {
    const path = join(temp.path, name);
    await assert.rejects(
      decodeToTensor(path, { size: 8, fit: 'fill', ...(maxPixels ? { maxPixels } : {}) }),
      (error: unknown) => error instanceof ImageRejected && error.reason === reason && error.source === path && error.exitCode === 2,
      name,
    );
  }
  // The same bytes as a buffer (serve's path) give the same reasons.
  await assert.rejects(decodeToTensor(Buffer.alloc(0), { size: 8, fit: 'fill' }), { reason: 'empty' });
  await assert.rejects(decodeToTensor(bombPng(40_000, 40_000), { size: 8, fit: 'fill' }), { reason: 'decompression-bomb' });
  assert.equal((await decodeToTensor(join(temp.path, 'big.jpg'), { size: 8, fit: 'fill', maxPixels: 60_000 })).length, 8 * 8 * 3);
});

test('a file is decoded the same whether read whole or, past READ_WHOLE_MAX_BYTES, from disk; non-files are rejected', async () => {
  const jpeg = await sharp(knownPixels(120, 90), { raw: { width: 120, height: 90, channels: 3 } })
    .jpeg({ quality: 90 })
    .toBuffer();
  const small = join(temp.path, 'whole.jpg');
  const large = join(temp.path, 'padded.jpg');
  await writeFile(small, jpeg);
  await writeFile(large, jpeg);
  // Bytes after a JPEG's end marker are ignored by decoders; a sparse extension makes the file large without writing it.
  const handle = await open(large, 'r+');
  await handle.truncate(READ_WHOLE_MAX_BYTES + 1);
  await handle.close();
  // Size 16: a 4x reduction, so sharp decodes it from memory as from disk (libjpeg-turbo needs the bytes in memory).
  const fromMemory = await decodeToTensor(small, { size: 16, fit: 'fill' });
  assert.deepEqual(await decodeToTensor(large, { size: 16, fit: 'fill' }), fromMemory);
  assert.deepEqual(await decodeToTensor(jpeg, { size: 16, fit: 'fill' }), fromMemory);

  const dir = join(temp.path, 'a-directory.jpg');
  await mkdir(dir);
  await assert.rejects(decodeToTensor(dir, { size: 8, fit: 'fill' }), { reason: 'not-an-image' });
  // A FIFO with no writer must be rejected, not wait forever for one.
  const fifo = join(temp.path, 'fifo.jpg');
  execFileSync('mkfifo', [fifo]);
  await assert.rejects(decodeToTensor(fifo, { size: 8, fit: 'fill' }), { reason: 'not-an-image' });
});

test('imageDimensions reads a JPEG frame header without decoding, other formats through sharp; EXIF rotation ignored', async () => {
  const raw = { raw: { width: 300, height: 200, channels: 3 as const } };
  const pixels = knownPixels(300, 200);
  const rotated = await sharp(pixels, raw).jpeg().withMetadata({ orientation: 6 }).toBuffer();
  const progressive = await sharp(pixels, raw).jpeg({ progressive: true }).toBuffer();
  const png = await sharp(pixels, raw).png().toBuffer();
  for (const bytes of [rotated, progressive, png]) assert.deepEqual(await imageDimensions(bytes), { width: 300, height: 200 });
  assert.equal(await imageDimensions(Buffer.from('not an image')), undefined);
});
