// Test-only (excluded from the build): a small learnable dataset in prep-data's layout and a tiny backbone.
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createRng, sha256, writeJsonAtomic } from '@imgpipe/kit';
import { buildTinyConvBackbone, writeSyntheticDataset } from '@imgpipe/test-utils';

export const TEST_SIZE = 16;

/**
 * writeSyntheticDataset's layout with pixels that depend on the label (class 1 brighter and bluer, plus noise),
 * so a head on a tiny random conv backbone's features can learn them, but not perfectly.
 */
export async function writeLearnableDataset(dir: string, counts = { train: 80, val: 40, test: 20 }, seed = 5): Promise<string> {
  await writeSyntheticDataset({ dir, size: TEST_SIZE, counts, seed });
  const manifestPath = join(dir, 'manifest.json');
  const manifest = JSON.parse(await readFile(manifestPath, 'utf8'));
  const rng = createRng(seed);
  const image = TEST_SIZE * TEST_SIZE * 3;
  for (const split of ['train', 'val', 'test'] as const) {
    const count = counts[split];
    const pixels = new Uint8Array(count * image);
    for (let n = 0; n < count; n++) {
      const label = n % 2;
      for (let p = 0; p < TEST_SIZE * TEST_SIZE; p++) {
        for (let c = 0; c < 3; c++) {
          const base = 110 + (label ? (c === 2 ? 25 : 8) : 0);
          pixels[n * image + p * 3 + c] = Math.max(0, Math.min(255, Math.round(base + (rng() - 0.5) * 160)));
        }
      }
    }
    await writeFile(join(dir, `${split}.u8`), pixels);
    manifest.splits[split].pixels.sha256 = sha256(pixels);
  }
  await writeJsonAtomic(manifestPath, manifest);
  return dir;
}

/** The tiny ONNX conv backbone (8 features) as train options. */
export async function tinyBackbone(dir: string): Promise<{ backbone: string; featureLayer: string; preprocess: string }> {
  const tiny = await buildTinyConvBackbone({ dir, inputSize: TEST_SIZE, format: 'onnx', seed: 1 });
  return { backbone: tiny.path, featureLayer: tiny.featureLayer, preprocess: 'torch' };
}
