import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { UsageError } from '@imgpipe/kit';
import { preprocessPixels, preprocessSpec } from './preprocess.js';

describe('preprocess', () => {
  // One 1x2 image: pixel 0 = (255, 0, 128), pixel 1 = (10, 20, 30).
  const pixels = Uint8Array.from([255, 0, 128, 10, 20, 30]);

  it('torch: [0,1] then ImageNet mean/std, RGB', () => {
    const out = preprocessPixels(pixels, 1, 1, preprocessSpec('torch'), 'NHWC', new Float32Array(3));
    assert.ok(Math.abs(out[0]! - (1 - 0.485) / 0.229) < 1e-6);
    assert.ok(Math.abs(out[1]! - (0 - 0.456) / 0.224) < 1e-6);
    assert.ok(Math.abs(out[2]! - (128 / 255 - 0.406) / 0.225) < 1e-6);
  });

  it('tf: [-1, 1]', () => {
    const out = preprocessPixels(pixels, 1, 1, preprocessSpec('tf'));
    assert.deepEqual(
      [...out].map((v) => Number(v.toFixed(5))),
      [1, -1, Number((128 / 127.5 - 1).toFixed(5))],
    );
  });

  it('caffe: BGR order minus the ImageNet means in BGR', () => {
    const out = preprocessPixels(pixels, 1, 1, preprocessSpec('caffe'));
    assert.ok(Math.abs(out[0]! - (128 - 103.939)) < 1e-4); // B
    assert.ok(Math.abs(out[1]! - (0 - 116.779)) < 1e-4); // G
    assert.ok(Math.abs(out[2]! - (255 - 123.68)) < 1e-4); // R
  });

  it("efficientnet-lite: (x - 127) / 128, as the Model Zoo's EfficientNet-Lite4 expects", () => {
    const out = preprocessPixels(pixels, 2, 1, preprocessSpec('efficientnet-lite'));
    assert.deepEqual([...out.subarray(0, 6)], [128 / 128, -127 / 128, 1 / 128, -117 / 128, -107 / 128, -97 / 128]);
  });

  it('NCHW puts each channel in its own plane', () => {
    const two = Uint8Array.from([1, 2, 3, 4, 5, 6]); // 2 images of 1x1
    const out = preprocessPixels(two, 2, 1, preprocessSpec('none'), 'NCHW');
    assert.deepEqual([...out], [1, 2, 3, 4, 5, 6]);
    const square = Uint8Array.from({ length: 2 * 2 * 3 }, (_, i) => i);
    assert.deepEqual([...preprocessPixels(square, 1, 2, preprocessSpec('none'), 'NCHW')], [0, 3, 6, 9, 1, 4, 7, 10, 2, 5, 8, 11]);
  });

  it('an unknown name is a usage error naming --preprocess', () => {
    assert.throws(
      () => preprocessSpec('imagenet'),
      (error: Error) => error instanceof UsageError && /--preprocess/.test(error.message),
    );
  });

  it('too few pixels is an error, not garbage', () => {
    assert.throws(() => preprocessPixels(new Uint8Array(5), 1, 2, preprocessSpec('none')), RangeError);
  });
});
