// The common case, a plain JPEG photo, is decoded by libjpeg-turbo and resized by imgpipe's SIMD resize; these
// check that path against independent references and against sharp, and that it is the path taken.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import sharp from 'sharp';
import { decodeToTensor, decodeWithView, ImageRejected, imagePipelineInfo } from '@imgpipe/images';
import { decodeJpegResized, decodesWithTurbo } from '@imgpipe/images/jpeg-decode';
import { decodeJpegRgb } from '@imgpipe/images/jpeg-turbo';
import { readJpegHeader } from '@imgpipe/images/jpeg-header';
import { coefficients, horizontalGroups, prepareResize, resizeRgb } from '@imgpipe/images/resize';
import { orientRgb } from '@imgpipe/images/orient';

/** A smooth picture with detail (so every resize tap matters), as raw RGB. */
function picture(width: number, height: number): Uint8Array {
  const data = new Uint8Array(width * height * 3);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const i = (y * width + x) * 3;
      data[i] = (x * 7 + y * 3) % 256;
      data[i + 1] = Math.round(127.5 + 127.5 * Math.sin(x / 5) * Math.cos(y / 7));
      data[i + 2] = (x ^ y) & 255;
    }
  }
  return data;
}

/** An independent triangle-filter resize in doubles: each output sample weighs input samples by 1 - |d| / support. */
function referenceResize(data: Uint8Array, width: number, height: number, size: number): Float64Array {
  const axis = (inSize: number) => {
    const scale = inSize / size;
    const support = Math.max(1, scale);
    return Array.from({ length: size }, (_, o) => {
      const centre = (o + 0.5) * scale;
      const taps: [number, number][] = [];
      for (let i = 0; i < inSize; i++) {
        const w = Math.max(0, 1 - Math.abs((i + 0.5 - centre) / support));
        if (w > 0) taps.push([i, w]);
      }
      const total = taps.reduce((s, [, w]) => s + w, 0);
      return taps.map(([i, w]) => [i, w / total] as [number, number]);
    });
  };
  const [xs, ys] = [axis(width), axis(height)];
  const out = new Float64Array(size * size * 3);
  for (let oy = 0; oy < size; oy++) {
    for (let ox = 0; ox < size; ox++) {
      for (let c = 0; c < 3; c++) {
        let sum = 0;
        for (const [y, wy] of ys[oy]!) for (const [x, wx] of xs[ox]!) sum += data[(y * width + x) * 3 + c]! * wx * wy;
        out[(oy * size + ox) * 3 + c] = sum;
      }
    }
  }
  return out;
}

/** The JPEG without its APP2 ICC_PROFILE segments (sharp's withMetadata embeds an sRGB profile with the EXIF). */
function withoutIcc(jpeg: Buffer): Buffer {
  const parts: Buffer[] = [jpeg.subarray(0, 2)];
  let at = 2;
  while (jpeg[at] === 0xff && jpeg[at + 1] !== 0xda) {
    const end = at + 2 + jpeg.readUInt16BE(at + 2);
    if (!(jpeg[at + 1] === 0xe2 && jpeg.subarray(at + 4, at + 15).toString('latin1') === 'ICC_PROFILE')) parts.push(jpeg.subarray(at, end));
    at = end;
  }
  parts.push(jpeg.subarray(at));
  return Buffer.concat(parts);
}

/** How many bytes differ (assert.deepEqual on large arrays spends minutes describing a difference). */
const differing = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  assert.equal(a.length, b.length);
  let count = 0;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) count++;
  return count;
};

const meanAbsDiff = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  let total = 0;
  for (let i = 0; i < a.length; i++) total += Math.abs(a[i]! - b[i]!);
  return total / a.length;
};

const maxAbsDiff = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  assert.equal(a.length, b.length);
  let max = 0;
  for (let i = 0; i < a.length; i++) max = Math.max(max, Math.abs(a[i]! - b[i]!));
  return max;
};

describe('the libjpeg-turbo path', () => {
  it('resizeRgb matches an independent triangle filter to within rounding, shrinking and enlarging, odd widths', () => {
    // 500 and 557 wide: reductions of 2.2x and 2.5x, whose windows span seven taps but weigh at most five (one group of
    // the horizontal pass, four pixels at a time); 900 and 1700 wide take two and four groups.
    for (const [width, height, size] of [
      [373, 301, 224],
      [100, 61, 224],
      [225, 224, 224],
      [61, 500, 32],
      [500, 375, 224],
      [557, 375, 224],
      [900, 700, 224],
      [1700, 850, 224],
      // Outputs whose width is not a multiple of four: the horizontal pass's last pixels one at a time.
      [90, 70, 37],
      [61, 45, 30],
    ] as const) {
      const data = picture(width, height);
      const ours = resizeRgb(data, width, height, size, 'fill');
      assert.ok(maxAbsDiff(ours, referenceResize(data, width, height, size)) <= 1.5, `${width}x${height} -> ${size}`);
    }
    assert.equal(horizontalGroups(coefficients(500, 224, 0, 500)).groups, 1, '2.2x: five taps at most');
    assert.equal(horizontalGroups(coefficients(557, 224, 0, 557)).groups, 1, '2.5x: five taps at most');
    assert.equal(horizontalGroups(coefficients(900, 224, 0, 900)).groups, 2, '4x: two groups of five');
    assert.equal(horizontalGroups(coefficients(1700, 224, 0, 1700)).groups, 4, '7.6x: four groups of five');
    const weights = coefficients(373, 224, 0, 373);
    for (let o = 0; o < 224; o++) {
      let sum = 0;
      for (let k = 0; k < weights.counts[o]!; k++) sum += weights.weights[o * weights.taps + k]!;
      assert.equal(sum, 16384, 'fixed-point weights sum to one');
    }
  });

  it('a prepared resize runs only while it is the latest, and writes into a given buffer', () => {
    const [width, height, size] = [131, 97, 48];
    const data = picture(width, height);
    const expected = resizeRgb(data, width, height, size, 'fill');
    const first = prepareResize(width, height, size, 'fill');
    prepareResize(50, 50, 16, 'fill');
    assert.throws(() => first.run(), /another resize was prepared/);
    const into = new Uint8Array(size * size * 3);
    assert.equal(resizeRgb(data, width, height, size, 'fill', into), into);
    assert.equal(differing(into, expected), 0);
    assert.throws(() => resizeRgb(data, width, height, size, 'fill', new Uint8Array(10)), /target/);
  });

  it('a JPEG decoded straight into the resize gives the pixels of a decode then a resize', async () => {
    // Widths whose rows are not a multiple of 16 bytes: the vertical pass reads past each source row.
    for (const [width, height, size, fit, orientation] of [
      [373, 301, 224, 'fill', 1],
      [500, 375, 224, 'cover', 1],
      [61, 45, 32, 'fill', 1],
      [640, 427, 100, 'cover', 1],
      [373, 301, 224, 'fill', 6],
      [61, 45, 32, 'cover', 8],
      [61, 45, 32, 'fill', 3],
    ] as const) {
      const jpeg = withoutIcc(
        await sharp(picture(width, height), { raw: { width, height, channels: 3 } })
          .jpeg({ quality: 85 })
          .withMetadata({ orientation })
          .toBuffer(),
      );
      const header = readJpegHeader(jpeg)!;
      assert.equal(header.orientation, orientation);
      const full = orientRgb(await decodeJpegRgb(jpeg, width * height), orientation); // never released: the test keeps it
      const expected = resizeRgb(full.data, full.width, full.height, size, fit);
      const inPlace = await decodeJpegResized(jpeg, header, 'test', { size, fit }, true);
      const viaCopy = await decodeJpegResized(jpeg, header, 'test', { size, fit }, false);
      assert.equal(differing(inPlace, expected), 0, `${width}x${height} ${fit}, in place`);
      assert.equal(differing(viaCopy, expected), 0, `${width}x${height} ${fit}, on libuv's pool`);
      await assert.rejects(
        decodeJpegResized(jpeg.subarray(0, jpeg.length >> 1), header, 'half.jpg', { size, fit }, true),
        (error: unknown) => error instanceof ImageRejected && error.reason === 'unreadable' && error.source === 'half.jpg',
      );
    }
  });

  it('a prepared resize turns a stored picture upright as orientRgb does, for every EXIF orientation', () => {
    for (const [width, height, size, fit] of [
      [131, 97, 48, 'fill'],
      [97, 131, 64, 'cover'],
      [5, 3, 8, 'fill'],
    ] as const) {
      const stored = picture(width, height);
      for (let orientation = 1; orientation <= 8; orientation++) {
        const upright = orientRgb({ data: stored, width, height }, orientation);
        const expected = resizeRgb(upright.data, upright.width, upright.height, size, fit);
        const prepared = prepareResize(width, height, size, fit, orientation);
        assert.equal(prepared.source.length, width * height * 3);
        prepared.source.set(stored);
        assert.equal(differing(prepared.run(), expected), 0, `${width}x${height} ${fit}, orientation ${orientation}`);
      }
    }
  });

  it('cover takes the centred square (its edge columns filtered with the pixels beyond the crop)', () => {
    const [width, height, size] = [300, 200, 50];
    const data = picture(width, height);
    const square = new Uint8Array(200 * 200 * 3);
    for (let y = 0; y < 200; y++) square.set(data.subarray((y * width + 50) * 3, (y * width + 250) * 3), y * 200 * 3);
    const [cover, cropped] = [resizeRgb(data, width, height, size, 'cover'), resizeRgb(square, 200, 200, size, 'fill')];
    const inner = (pixels: Uint8Array) =>
      Array.from({ length: size }, (_, y) => [...pixels.subarray((y * size + 1) * 3, (y * size + size - 1) * 3)]).flat();
    assert.equal(differing(inner(cover), inner(cropped)), 0);
    assert.ok(differing(cover, cropped) > 0, 'the edge columns see past the crop');
  });

  it('reads the header: size, coding, orientation, ICC profile', async () => {
    const raw = picture(120, 80);
    const base = sharp(raw, { raw: { width: 120, height: 80, channels: 3 } });
    const plain = readJpegHeader(await base.clone().jpeg({ quality: 90 }).toBuffer())!;
    assert.deepEqual(plain, {
      width: 120,
      height: 80,
      components: 3,
      precision: 8,
      coding: 'huffman',
      orientation: 1,
      icc: false,
      adobeTransform: undefined,
    });
    assert.equal(readJpegHeader(await base.clone().jpeg({ progressive: true }).toBuffer())!.coding, 'progressive');
    const rotated = await base.clone().jpeg().withMetadata({ orientation: 6 }).toBuffer();
    assert.equal(readJpegHeader(rotated)!.orientation, 6);
    assert.equal(readJpegHeader(rotated)!.icc, 'srgb', "sharp's own sRGB profile, embedded with the EXIF");
    assert.equal(readJpegHeader(withoutIcc(rotated))!.icc, false);
    assert.equal(readJpegHeader(await base.clone().jpeg().withIccProfile('p3').toBuffer())!.icc, 'other');
    assert.equal(readJpegHeader(await base.clone().jpeg().withIccProfile('cmyk').toBuffer())!.icc, 'other');
    assert.equal(readJpegHeader(await base.clone().toColourspace('b-w').jpeg().toBuffer())!.components, 1);
    assert.equal(readJpegHeader(Buffer.from('not a jpeg at all')), undefined);
  });

  it('is taken for a plain photo-sized JPEG: resizeRgb of the full decode, close to what sharp decodes', async () => {
    const [width, height, size] = [447, 374, 224];
    const jpeg = await sharp(picture(width, height), { raw: { width, height, channels: 3 } })
      .jpeg({ quality: 85 })
      .toBuffer();
    assert.ok(decodesWithTurbo(jpeg, size, Number.POSITIVE_INFINITY), 'eligible');
    const full = await decodeJpegRgb(jpeg, width * height); // never released: the test keeps it
    const pixels = await decodeToTensor(jpeg, { size, fit: 'fill' });
    assert.equal(differing(pixels, resizeRgb(full.data, width, height, size, 'fill')), 0, 'this path ran');
    const bySharp = await sharp(jpeg).raw().toBuffer();
    assert.ok(
      meanAbsDiff(full.data, bySharp) < 2 && maxAbsDiff(full.data, bySharp) <= 12,
      `libjpeg-turbo and libvips decode alike (rounding apart): mean ${meanAbsDiff(full.data, bySharp)}, max ${maxAbsDiff(full.data, bySharp)}`,
    );
    const { pixels: served, view } = await decodeWithView(jpeg, { size, fit: 'fill', maxViewPixels: 1e6 });
    assert.equal(differing(served, pixels), 0, 'serve decodes as prep-data does');
    assert.equal(differing(view!.data, full.data), 0, 'one decode gives the view too');
  });

  it('applies every EXIF orientation as sharp does', async () => {
    const [width, height, size] = [150, 100, 64];
    const base = sharp(picture(width, height), { raw: { width, height, channels: 3 } });
    for (let orientation = 1; orientation <= 8; orientation++) {
      const jpeg = withoutIcc(await base.clone().jpeg({ quality: 95 }).withMetadata({ orientation }).toBuffer());
      assert.equal(decodesWithTurbo(jpeg, size, Number.POSITIVE_INFINITY)?.orientation, orientation);
      const upright = await sharp(jpeg).rotate().raw().toBuffer({ resolveWithObject: true });
      const expected = resizeRgb(upright.data, upright.info.width, upright.info.height, size, 'fill');
      const decoded = await decodeToTensor(jpeg, { size, fit: 'fill' });
      assert.ok(meanAbsDiff(decoded, expected) < 2, `orientation ${orientation}: mean ${meanAbsDiff(decoded, expected)}`);
    }
  });

  it('leaves to sharp what libjpeg-turbo should not decode: non-sRGB ICC profiles, CMYK, large reductions', async () => {
    const raw = picture(200, 150);
    const base = sharp(raw, { raw: { width: 200, height: 150, channels: 3 } });
    assert.equal(decodesWithTurbo(await base.clone().jpeg().withIccProfile('p3').toBuffer(), 64, Infinity), undefined);
    assert.equal(decodesWithTurbo(await base.clone().toColourspace('cmyk').jpeg().toBuffer(), 64, Infinity), undefined);
    assert.equal(decodesWithTurbo(await base.clone().jpeg().toBuffer(), 32, Infinity), undefined, 'short side 150 >= 4 x 32: shrink-on-load');
    assert.ok(decodesWithTurbo(await base.clone().jpeg().toBuffer(), 40, Infinity));
    assert.equal(decodesWithTurbo(await base.clone().jpeg().toBuffer(), 80, 1000), undefined, 'over --max-pixels: sharp says why');
  });

  it("takes sRGB-tagged JPEGs too: their pixels are what sharp's colour-managed decode gives, to rounding", async () => {
    const [width, height, size] = [300, 200, 96];
    const base = sharp(picture(width, height), { raw: { width, height, channels: 3 } });
    for (const tagged of [
      await base.clone().jpeg({ quality: 90 }).withIccProfile('srgb').toBuffer(),
      await base.clone().jpeg({ quality: 90 }).withMetadata().toBuffer(),
    ]) {
      const header = decodesWithTurbo(tagged, size, Infinity);
      assert.equal(header?.icc, 'srgb');
      const decoded = await decodeToTensor(tagged, { size, fit: 'fill' });
      const managed = await sharp(tagged).toColourspace('srgb').raw().toBuffer();
      assert.ok(
        meanAbsDiff(decoded, resizeRgb(managed, width, height, size, 'fill')) < 1,
        `mean ${meanAbsDiff(decoded, resizeRgb(managed, width, height, size, 'fill'))}`,
      );
      assert.equal(differing(decoded, await decodeToTensor(withoutIcc(tagged), { size, fit: 'fill' })), 0, 'the profile changes nothing');
    }
  });

  it('rejects a truncated JPEG as unreadable', async () => {
    const jpeg = await sharp(picture(300, 200), { raw: { width: 300, height: 200, channels: 3 } })
      .jpeg()
      .toBuffer();
    const cut = jpeg.subarray(0, Math.floor(jpeg.length * 0.6));
    assert.ok(decodesWithTurbo(cut, 224, Infinity), 'the header survives, so this path sees it');
    await assert.rejects(
      decodeToTensor(cut, { size: 224, fit: 'fill' }),
      (error: Error) => error instanceof ImageRejected && error.reason === 'unreadable',
    );
  });

  it('is named in the pipeline identity recorded in dataset manifests', async () => {
    assert.match(
      String((await imagePipelineInfo()).jpeg_decoder),
      /^libjpeg-turbo \(@julusian\/jpeg-turbo \d+\.\d+\.\d+, fast integer IDCT\) then imgpipe triangle\/1/,
    );
  });
});
