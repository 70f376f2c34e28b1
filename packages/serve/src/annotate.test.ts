import assert from 'node:assert/strict';
import { test } from 'node:test';
import sharp from 'sharp';
import { annotateView, drawCaption } from './annotate.js';

const gray = (width: number, height: number, value = 100) => ({ data: Buffer.alloc(width * height * 3, value), width, height });

test('drawCaption darkens a banner across the top, writes white text in it, and leaves the rest alone', async () => {
  const view = gray(400, 300);
  await drawCaption(view, 'dog 93.1%');
  const bannerHeight = Math.round(300 * 0.12);
  const row = (y: number) => view.data.subarray(y * 400 * 3, (y + 1) * 400 * 3);
  for (let y = bannerHeight; y < 300; y += 1)
    assert.ok(
      row(y).every((v) => v === 100),
      `row ${y} changed`,
    );
  const banner = view.data.subarray(0, bannerHeight * 400 * 3);
  const dark = banner.filter((v) => v === 40).length;
  const white = banner.filter((v) => v > 200).length;
  assert.ok(dark > banner.length * 0.6, `${dark} of ${banner.length} banner bytes darkened`);
  assert.ok(white > 100, `${white} text bytes`);
  // Glyphs advance left to right: ink in the first and second halves of the caption's span, none past it.
  const inkColumns = new Set<number>();
  for (let i = 0; i < banner.length; i += 3) if (banner[i]! > 200) inkColumns.add((i / 3) % 400);
  const columns = [...inkColumns].sort((a, b) => a - b);
  assert.ok(columns[0]! < 40 && columns.at(-1)! > 120 && columns.at(-1)! < 400, `text spans columns ${columns[0]}-${columns.at(-1)}`);
});

test('a long caption on a narrow picture, odd characters and a picture shorter than the banner are drawn without error', async () => {
  await drawCaption(gray(40, 400), 'a-very-long-label-name-indeed 100.0%');
  await drawCaption(gray(300, 8), 'cat 50.0%');
  const view = gray(200, 150);
  await drawCaption(view, '<&>"\' \u0007 chat noir 12.5%');
  assert.ok(view.data.subarray(0, 18 * 200 * 3).some((v) => v > 200));
});

test("annotateView encodes the drawn picture in the input's format, as base64", async () => {
  const jpeg = Buffer.from(await annotateView(gray(160, 120), 'jpeg', 'cat', 0.5), 'base64');
  const meta = await sharp(jpeg).metadata();
  assert.deepEqual([meta.format, meta.width, meta.height], ['jpeg', 160, 120]);
  const png = Buffer.from(await annotateView(gray(16, 16), 'gif', 'cat', 0.5), 'base64');
  assert.equal((await sharp(png).metadata()).format, 'png');
});

test('answers encoded one after another into the reused buffer stay whole and distinct', async () => {
  // A larger picture after a smaller one (the buffer grows), then a smaller one again: each text decodes to its own
  // picture, not to bytes left over from another.
  const sizes = [
    [64, 48],
    [320, 240],
    [40, 30],
  ] as const;
  const texts = await Promise.all(sizes.map(([w, h], i) => annotateView(gray(w, h, 40 + 80 * i), 'jpeg', `c${i}`, 0.9)));
  for (const [i, text] of texts.entries()) {
    const { data, info } = await sharp(Buffer.from(text, 'base64')).raw().toBuffer({ resolveWithObject: true });
    assert.deepEqual([info.width, info.height], sizes[i]);
    const bottom = data[(info.height - 1) * info.width * 3]!;
    assert.ok(Math.abs(bottom - (40 + 80 * i)) <= 3, `picture ${i}: grey ${bottom}`);
  }
});
