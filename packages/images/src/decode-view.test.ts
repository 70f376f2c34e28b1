import assert from 'node:assert/strict';
import { test } from 'node:test';
import sharp, { type Sharp } from 'sharp';
import { createRng } from '@imgpipe/kit';
import { drawImage } from '@imgpipe/test-utils';
import { decodeToTensor, decodeWithView, encodeView, ImageRejected } from '@imgpipe/images';
import { decodeJpegRgb } from '@imgpipe/images/jpeg-turbo';

const rng = createRng(11);
const photo = (width: number, height: number) => drawImage(rng, 1, width, height);
const reencode = async (jpeg: Buffer, to: (image: Sharp) => Sharp) => to(sharp(jpeg)).toBuffer();

// Every way an upload can look: plain web photos on both sides of the shrink-on-load threshold (short side 448 at
// 224), portrait, smaller than the model, PNG, WebP both ways, and the inputs that need a second decode: EXIF
// rotation, an ICC profile, alpha, grayscale, 16 bits.
const cases: [string, () => Promise<Buffer>][] = [
  ['jpeg 500x375', () => photo(500, 375)],
  ['jpeg 447x640 (portrait, just under shrink-on-load)', () => photo(447, 640)],
  ['jpeg 1024x768 (shrink-on-load)', () => photo(1024, 768)],
  ['jpeg 224x224', () => photo(224, 224)],
  ['jpeg 100x80 (enlarged)', () => photo(100, 80)],
  ['png 500x375', async () => reencode(await photo(500, 375), (i) => i.png())],
  ['webp 200x150 (enlarged)', async () => reencode(await photo(200, 150), (i) => i.webp())],
  ['webp 500x375 (scaled on load)', async () => reencode(await photo(500, 375), (i) => i.webp())],
  ['jpeg with EXIF orientation 6', async () => reencode(await photo(400, 300), (i) => i.jpeg().withMetadata({ orientation: 6 }))],
  ['jpeg with a Display P3 profile', async () => reencode(await photo(400, 300), (i) => i.jpeg().withIccProfile('p3'))],
  ['png with alpha', async () => reencode(await photo(300, 200), (i) => i.ensureAlpha(0.5).png())],
  ['grayscale png', async () => reencode(await photo(300, 200), (i) => i.grayscale().png())],
  ['16-bit png', async () => reencode(await photo(300, 200), (i) => i.toColourspace('rgb16').png())],
];

test("the model input from decodeWithView is byte for byte decodeToTensor's, for fill and cover", async () => {
  for (const [name, make] of cases) {
    const bytes = await make();
    for (const fit of ['fill', 'cover'] as const) {
      const expected = await decodeToTensor(bytes, { size: 224, fit });
      const { pixels, view } = await decodeWithView(bytes, { size: 224, fit, maxViewPixels: 4_000_000 });
      assert.equal(Buffer.compare(Buffer.from(pixels), Buffer.from(expected)), 0, `${name}, ${fit}: model pixels differ`);
      assert.equal(view?.data.length, view!.width * view!.height * 3, name);
    }
  }
});

test('views given back are reused, and a reused buffer holds the new picture whole', async () => {
  const [large, small] = [await photo(480, 360), await photo(320, 200)];
  const first = await decodeWithView(large, { size: 224, fit: 'fill', maxViewPixels: 4_000_000 });
  const firstBuffer = first.view!.data.buffer;
  first.view!.release?.();
  const second = await decodeWithView(small, { size: 224, fit: 'fill', maxViewPixels: 4_000_000 });
  assert.equal(second.view!.data.buffer, firstBuffer, 'the released buffer was taken again');
  const expected = (await decodeJpegRgb(small, 320 * 200)).data; // never released: the test keeps it
  assert.equal(Buffer.compare(second.view!.data, Buffer.from(expected)), 0, 'the view is the second picture, whole');
  const third = await decodeWithView(large, { size: 224, fit: 'fill', maxViewPixels: 4_000_000 });
  assert.notEqual(third.view!.data.buffer, firstBuffer, 'a view still in use is not handed out twice');
});

test('the view is the upright picture, scaled down to maxViewPixels', async () => {
  const rotated = await reencode(await photo(400, 300), (i) => i.jpeg().withMetadata({ orientation: 6 }));
  const { view } = await decodeWithView(rotated, { size: 224, fit: 'fill', maxViewPixels: 4_000_000 });
  assert.deepEqual([view?.width, view?.height], [300, 400]);
  const big = await photo(1024, 768);
  const small = await decodeWithView(big, { size: 224, fit: 'fill', maxViewPixels: 100_000 });
  assert.equal(small.format, 'jpeg');
  const { width, height } = small.view!;
  assert.ok(width * height <= 100_000 && Math.abs(width / height - 1024 / 768) < 0.01, `${width}x${height}`);
});

test('encodeView keeps JPEG and WebP, turns anything else into PNG', async () => {
  const view = (await decodeWithView(await photo(120, 90), { size: 32, fit: 'fill', maxViewPixels: 1e6 })).view!;
  for (const [format, expected] of [
    ['jpeg', 'jpeg'],
    ['webp', 'webp'],
    ['gif', 'png'],
    [undefined, 'png'],
  ] as const) {
    const meta = await sharp(await encodeView(view, format)).metadata();
    assert.equal(meta.format, expected);
    assert.deepEqual([meta.width, meta.height], [120, 90]);
  }
});

test("bad bytes are rejected with decodeToTensor's reasons", async () => {
  const good = await photo(300, 200);
  const reasons: [Buffer, string][] = [
    [good.subarray(0, good.length / 2), 'unreadable'],
    [Buffer.from('not an image'), 'not-an-image'],
    [Buffer.alloc(0), 'empty'],
  ];
  for (const [bytes, reason] of reasons) {
    await assert.rejects(
      decodeWithView(bytes, { size: 64, fit: 'fill', maxViewPixels: 1e6 }),
      (error: unknown) => error instanceof ImageRejected && error.reason === reason,
    );
  }
  await assert.rejects(
    decodeWithView(good, { size: 64, fit: 'fill', maxViewPixels: 1e6, maxPixels: 1000 }),
    (error: unknown) => error instanceof ImageRejected && error.reason === 'too-large',
  );
});
