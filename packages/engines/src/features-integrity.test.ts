import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { format } from 'node:util';
import { after, before, describe, it } from 'node:test';
import { buildTinyConvBackbone, makeTempDir, writeSyntheticDataset, type TempDir } from '@imgpipe/test-utils';
import { loadBackbone, type Backbone, extractFeatures } from '@imgpipe/engines';
import { FailureError, openDataset, silentLogger, type Dataset } from '@imgpipe/kit';

const SIZE = 16;

describe('extractFeatures: verified pixels and a self-checking cache', () => {
  let temp: TempDir;
  let dataset: Dataset;
  let onnx: Backbone;

  before(async () => {
    temp = await makeTempDir('imgpipe-features-integrity-');
    await writeSyntheticDataset({ dir: join(temp.path, 'data'), size: SIZE, counts: { train: 23, val: 5, test: 4 } });
    dataset = await openDataset(join(temp.path, 'data'));
    const model = await buildTinyConvBackbone({ dir: join(temp.path, 'onnx'), inputSize: SIZE, seed: 5, format: 'onnx' });
    onnx = await loadBackbone(model.path, { device: 'cpu', featureLayer: 'features', preprocess: 'torch' });
  });
  after(async () => {
    await onnx?.dispose();
    await temp.remove();
  });

  it('a damaged cache entry is recomputed with a warning, not trusted', async () => {
    const cacheDir = join(temp.path, 'cache');
    const first = await extractFeatures({ dataset, split: 'train', backbone: onnx, batchSize: 4, cacheDir });
    const data = join(cacheDir, 'features', `${first.key}.f32`);
    const bytes = await readFile(data);
    bytes.writeFloatLE(1234.5, 40); // same size, other values: what a poisoned or bit-rotted entry looks like
    await writeFile(data, bytes);
    const warnings: string[] = [];
    const log = { ...silentLogger, warn: (m: string, ...a: unknown[]) => warnings.push(format(m, ...a)) };
    const second = await extractFeatures({ dataset, split: 'train', backbone: onnx, batchSize: 4, cacheDir, log });
    assert.equal(second.fromCache, false, 'recomputed');
    assert.deepEqual(second.features, first.features);
    assert.match(warnings.join('\n'), /checksum does not match \(damaged\); recomputing/);
    const third = await extractFeatures({ dataset, split: 'train', backbone: onnx, batchSize: 4, cacheDir });
    assert.equal(third.fromCache, true, 'the rewritten entry is used again');
  });

  it('refuses non-finite features naming the split and the image', async () => {
    const faulty: Backbone = Object.assign(Object.create(Object.getPrototypeOf(onnx)) as Backbone, onnx, {
      extract: async (pixels: Uint8Array, n: number) => {
        const out = await onnx.extract(pixels, n);
        if (n > 1) out[8 * 1 + 3] = Number.NaN; // the second image of each batch
        return out;
      },
    });
    await assert.rejects(
      extractFeatures({ dataset, split: 'val', backbone: faulty, batchSize: 5, cacheDir: join(temp.path, 'cache-nan') }),
      (error: unknown) => {
        assert.ok(error instanceof FailureError);
        assert.equal(error.exitCode, 1);
        assert.match(error.message, /image 1 of the val split has a non-finite feature \(NaN\)/);
        return true;
      },
    );
  });
});
