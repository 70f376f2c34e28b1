// A small learnable dataset in prep-data's layout and a tiny backbone, for train's tests and the cross-package ones.
import { createRng } from '@imgpipe/kit';
import { writeSyntheticDataset } from './synthetic-dataset.js';
import { buildTinyConvBackbone } from './tiny-models.js';

export const TEST_SIZE = 16;

/**
 * writeSyntheticDataset's layout with pixels that depend on the label (class 1 brighter and bluer, plus noise),
 * so a head on a tiny random conv backbone's features can learn them, but not perfectly.
 */
export async function writeLearnableDataset(dir: string, counts = { train: 80, val: 40, test: 20 }, seed = 5): Promise<string> {
  const rng = createRng(seed);
  const image = TEST_SIZE * TEST_SIZE * 3;
  const pixels = (_split: string, count: number) => {
    const out = new Uint8Array(count * image);
    for (let n = 0; n < count; n++) {
      const label = n % 2;
      for (let p = 0; p < TEST_SIZE * TEST_SIZE; p++) {
        for (let c = 0; c < 3; c++) {
          const base = 110 + (label ? (c === 2 ? 25 : 8) : 0);
          out[n * image + p * 3 + c] = Math.max(0, Math.min(255, Math.round(base + (rng() - 0.5) * 160)));
        }
      }
    }
    return out;
  };
  return writeSyntheticDataset({ dir, size: TEST_SIZE, counts, seed, pixels });
}

/** The tiny ONNX conv backbone (8 features) as train options. */
export async function tinyBackbone(dir: string): Promise<{ backbone: string; featureLayer: string; preprocess: string }> {
  const tiny = await buildTinyConvBackbone({ dir, inputSize: TEST_SIZE, format: 'onnx', seed: 1 });
  return { backbone: tiny.path, featureLayer: tiny.featureLayer, preprocess: 'torch' };
}
