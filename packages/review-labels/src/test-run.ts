// Test-only (excluded from the build): a finished run of the real train bin over a noisy dataset.
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { noisyBackbone, writeNoisyDataset, type NoisyDataset, type NoisyDatasetOptions } from './test-noisy-dataset.js';

export const TRAIN_BIN = fileURLToPath(new URL('../../train/bin/train.js', import.meta.url));
export const EVAL_BIN = fileURLToPath(new URL('../../eval/bin/eval-model.js', import.meta.url));
export const REVIEW_BIN = fileURLToPath(new URL('../bin/review-labels.js', import.meta.url));
export const BIN_ENV = { IMGPIPE_NO_WEBGPU: '1' };

/** One head trial, enough epochs to learn the colours: a second or two on 600 tiny images. */
export function trainArgs(data: string, backbone: string[], cacheDir: string, out: string): string[] {
  return [
    '--data',
    data,
    ...backbone,
    '--cache-dir',
    cacheDir,
    '--device',
    'wasm',
    '--lr',
    '0.01',
    '--layer-size',
    '64',
    '--epochs',
    '10',
    '--batch-size',
    '16',
    '--seed',
    '3',
    '--out',
    out,
    '-q',
  ];
}

export async function noisyRun(
  dir: string,
  options: Omit<NoisyDatasetOptions, 'dir'>,
): Promise<{ data: NoisyDataset; runDir: string; cacheDir: string }> {
  const data = await writeNoisyDataset({ dir: join(dir, 'data'), ...options });
  const backbone = await noisyBackbone(join(dir, 'backbone'));
  const cacheDir = join(dir, 'cache');
  const train = await execa(process.execPath, [TRAIN_BIN, ...trainArgs(data.dir, backbone, cacheDir, join(dir, 'runs'))], { env: BIN_ENV });
  return { data, runDir: JSON.parse(train.stdout).path, cacheDir };
}
