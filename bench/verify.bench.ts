// Cost of train's integrity checks at start-up on a synthetic dataset (default 25,000 images at 64x64: 307 MB of
// pixels; 224x224 would be 3.7 GB, and every figure below scales linearly with the bytes): hashing the train and
// val pixel files against the manifest (what a feature-cache hit costs; on a miss the hash rides along with the
// reads extraction does anyway), verifying the split CSVs, and checking a feature cache entry's own sha256
// (ResNet50's 2048 floats per image).
// Usage: IMGPIPE_BENCH_FILTER=verify node scripts/run-bench.mjs [--images 25000] [--size 64] [--dim 2048]
import { parseArgs } from 'node:util';
import { join } from 'node:path';
import { openDataset, sha256 } from '@imgpipe/kit';
import { makeTempDir, machineInfo, writeBenchResults, writeSyntheticDataset, type BenchResult } from '@imgpipe/test-utils';
import { verifyPixelFile } from '@imgpipe/engines';

const { values } = parseArgs({
  options: { images: { type: 'string', default: '25000' }, size: { type: 'string', default: '64' }, dim: { type: 'string', default: '2048' } },
});
const [images, size, dim] = [values.images, values.size, values.dim].map(Number) as [number, number, number];
const counts = { train: Math.round(images * 0.8), val: Math.round(images * 0.1), test: images - Math.round(images * 0.8) - Math.round(images * 0.1) };
const temp = await makeTempDir('imgpipe-bench-verify-');
try {
  await writeSyntheticDataset({ dir: join(temp.path, 'data'), size, counts });
  const results: BenchResult[] = [];
  const params = { images, size, counts, machine: machineInfo() };
  const time = async (name: string, fn: () => Promise<unknown>, extra: Record<string, unknown> = {}) => {
    const best = [];
    for (let i = 0; i < 3; i++) {
      const t = performance.now();
      await fn();
      best.push((performance.now() - t) / 1000);
    }
    const value = Math.min(...best);
    results.push({ name, unit: 's', value, params: { ...params, ...extra } });
    console.error(`${name}: ${value.toFixed(3)} s ${JSON.stringify(extra)}`);
  };
  const dataset = await openDataset(join(temp.path, 'data'));
  const bytes = (counts.train + counts.val) * size * size * 3;
  await time(
    'verify train+val pixels (sha256, streamed)',
    async () => {
      await verifyPixelFile(dataset, 'train');
      await verifyPixelFile(dataset, 'val');
    },
    { bytes, mb_per_s: undefined },
  );
  results.at(-1)!.params!.mb_per_s = bytes / 1e6 / results.at(-1)!.value;
  await time('verify train+val rows CSVs (open + parse + sha256)', async () => {
    const fresh = await openDataset(join(temp.path, 'data'));
    await fresh.rows('train');
    await fresh.rows('val');
  });
  const features = new Float32Array((counts.train + counts.val) * dim);
  for (let i = 0; i < features.length; i += 97) features[i] = i;
  await time('check feature cache entries (sha256 of the .f32 bytes)', async () => sha256(new Uint8Array(features.buffer)), {
    dim,
    bytes: features.byteLength,
  });
  await time(
    'check features are finite',
    async () => {
      for (let i = 0; i < features.length; i++) if (!Number.isFinite(features[i]!)) throw new Error('nan');
    },
    { dim },
  );
  console.error(`results: ${await writeBenchResults('verify', results)}`);
} finally {
  await temp.remove();
}
