import assert from 'node:assert/strict';
import { test } from 'node:test';
import { InputError } from '@imgpipe/kit';
import { decodeWeights } from './tfjs-weights.js';

test('decodeWeights: float32, uint8 and float16 quantized weights by name; non-float weights skipped but counted', () => {
  const f32 = new Uint8Array(Float32Array.of(1.5, -2).buffer);
  const u8 = Uint8Array.of(0, 10, 255);
  const f16 = new Uint8Array(Uint16Array.of(0x3c00, 0xc000, 0x3800, 0x0001).buffer); // 1, -2, 0.5, smallest subnormal
  const i32 = new Uint8Array(Int32Array.of(7).buffer);
  const tail = new Uint8Array(Float32Array.of(3).buffer);
  const data = new Uint8Array([...f32, ...u8, ...f16, ...i32, ...tail]);
  const manifest = [
    {
      paths: ['a.bin'],
      weights: [
        { name: 'conv/kernel', shape: [2], dtype: 'float32' as const },
        { name: 'conv/bias', shape: [3], dtype: 'float32' as const, quantization: { dtype: 'uint8' as const, scale: 0.5, min: -1 } },
      ],
    },
    {
      paths: ['b.bin'],
      weights: [
        { name: 'bn/gamma', shape: [2, 2], dtype: 'float32' as const, quantization: { dtype: 'float16' as const } },
        { name: 'step', shape: [], dtype: 'int32' as const },
        { name: 'bn/beta', shape: [1], dtype: 'float32' as const },
      ],
    },
  ];
  const weights = decodeWeights(manifest, data, 'model.json');
  assert.deepEqual([...weights.keys()], ['conv/kernel', 'conv/bias', 'bn/gamma', 'bn/beta']);
  assert.deepEqual([...weights.get('conv/kernel')!.data], [1.5, -2]);
  assert.deepEqual([...weights.get('conv/bias')!.data], [-1, 4, 126.5]);
  assert.deepEqual(weights.get('bn/gamma')!.shape, [2, 2]);
  assert.deepEqual([...weights.get('bn/gamma')!.data], [1, -2, 0.5, Math.fround(2 ** -24)]);
  assert.deepEqual([...weights.get('bn/beta')!.data], [3]);
  assert.throws(
    () => decodeWeights(manifest, data.subarray(0, 15), 'model.json'),
    (error: Error) => error instanceof InputError && /model\.json: the weight files end before weight bn\/gamma/.test(error.message),
  );
});
