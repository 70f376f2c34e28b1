import assert from 'node:assert/strict';
import { test } from 'node:test';
import sharp from 'sharp';
import { contactSheetSize, contactSheetSvg } from './plot-contact-sheet.js';
import { confusionMatrixSvg, confusionPlotSize } from './plot-confusion.js';
import { CURVES_SIZE, learningCurvesSvg, type TrialCurve } from './plot-curves.js';
import { decodedSize, rgbToPng, svgToPng } from './render.js';

async function decode(png: Buffer) {
  const { data, info } = await sharp(png).raw().toBuffer({ resolveWithObject: true });
  const at = (x: number, y: number) => [...data.subarray((y * info.width + x) * info.channels, (y * info.width + x) * info.channels + 3)];
  const count = (match: (r: number, g: number, b: number) => boolean) => {
    let n = 0;
    for (let i = 0; i < data.length; i += info.channels) if (match(data[i]!, data[i + 1]!, data[i + 2]!)) n++;
    return n;
  };
  return { info, at, count };
}

test('confusion matrix PNG: expected size, diagonal shaded by row share', async () => {
  const png = await svgToPng(
    confusionMatrixSvg(
      [
        [9, 1],
        [5, 5],
      ],
      ['cat', 'dog'],
    ),
  );
  const { width, height, cell } = confusionPlotSize(2);
  const { info, at } = await decode(png);
  assert.deepEqual([info.width, info.height, info.channels], [width, height, 3]);
  // Cell (0,0) holds 90% of its row, cell (0,1) 10%: the first is darker blue. Sample near a corner, off the text.
  const strong = at(150 + 4, 110 + 4);
  const weak = at(150 + cell + 4, 110 + 4);
  assert.ok(strong[0]! < weak[0]!, `expected ${strong} darker than ${weak}`);
  assert.equal(strong[2], 255);
});

test('confusion matrix size grows with the classes and escapes labels', async () => {
  const labels = Array.from({ length: 12 }, (_, i) => `class <${i}> & more`);
  const matrix = labels.map((_, r) => labels.map((__, c) => (r === c ? 3 : 0)));
  const svg = confusionMatrixSvg(matrix, labels);
  assert.ok(!svg.includes('<0>'));
  const size = await decodedSize(await svgToPng(svg));
  assert.deepEqual(size, { width: confusionPlotSize(12).width, height: confusionPlotSize(12).height, format: 'png' });
  assert.ok(confusionPlotSize(12).width > confusionPlotSize(2).width);
});

const trials: TrialCurve[] = [
  {
    label: 't1 lr=0.01',
    best: false,
    epochs: [1, 2, 3].map((epoch) => ({
      epoch,
      train_loss: 1 / epoch,
      val_loss: 1.2 / epoch,
      train_accuracy: 0.5 + epoch / 10,
      val_accuracy: 0.45 + epoch / 10,
    })),
  },
  {
    label: 't2 lr=0.001',
    best: true,
    epochs: [1, 2, 3].map((epoch) => ({
      epoch,
      train_loss: 0.8 / epoch,
      val_loss: 0.9 / epoch,
      train_accuracy: 0.6 + epoch / 10,
      val_accuracy: 0.55 + epoch / 10,
    })),
  },
  { label: 't3 diverged', best: false, epochs: [{ epoch: 1, train_loss: Number.NaN, val_loss: Number.POSITIVE_INFINITY }] },
];

test('learning curves PNG: expected size, the best trial drawn in colour', async () => {
  const svg = learningCurvesSvg(trials);
  assert.ok(!/NaN|Infinity/.test(svg), 'non-finite values are left out of the SVG');
  const { info, count } = await decode(await svgToPng(svg));
  assert.deepEqual([info.width, info.height], [CURVES_SIZE.width, CURVES_SIZE.height]);
  const green = (r: number, g: number, b: number) => r < 60 && g > 130 && g < 180 && b > 100 && b < 140;
  assert.ok(count(green) > 200, 'the best validation curve is drawn');
  const plain = await decode(await svgToPng(learningCurvesSvg(trials.map((t) => ({ ...t, best: false })))));
  // Without a best trial only the legend swatch is green.
  assert.ok(plain.count(green) < count(green) / 2);
});

test('contact sheet PNG: expected size, tiles show the images', async () => {
  const red = new Uint8Array(16 * 16 * 3).map((_, i) => (i % 3 === 0 ? 230 : 10));
  const blue = new Uint8Array(16 * 16 * 3).map((_, i) => (i % 3 === 2 ? 230 : 10));
  const tiles = await Promise.all(
    [red, blue, red, blue, red].map(async (pixels, i) => ({
      png: await rgbToPng(pixels, 16, 16),
      caption: [`img-${i}.jpg`, 'true: cat', 'pred: dog 97.0%'],
    })),
  );
  const { info, at } = await decode(await svgToPng(contactSheetSvg(tiles, 'Most confident mistakes')));
  assert.deepEqual({ width: info.width, height: info.height }, contactSheetSize(5));
  assert.equal(contactSheetSize(5).height > contactSheetSize(4).height, true);
  // Centre of tile 0 is red, of tile 1 blue (tiles are 152 px wide, images 128 px from 12,56).
  const [r0, , b0] = at(12 + 64, 44 + 12 + 64);
  const [r1, , b1] = at(152 + 12 + 64, 44 + 12 + 64);
  assert.ok(r0! > 200 && b0! < 40, `tile 0 is red: ${r0},${b0}`);
  assert.ok(b1! > 200 && r1! < 40, `tile 1 is blue: ${r1},${b1}`);
});

test('an empty contact sheet still renders', async () => {
  const size = await decodedSize(await svgToPng(contactSheetSvg([], 'Most confident mistakes')));
  assert.deepEqual(size, { ...contactSheetSize(0), format: 'png' });
});

test('rgbToPng checks its input size', async () => {
  await assert.rejects(rgbToPng(new Uint8Array(10), 2, 2), /expected 2x2x3 bytes/);
});
