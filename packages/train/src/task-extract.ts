import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { extractFeatures } from '@imgpipe/engines';
import { openDataset, UsageError, writeFileAtomic, writeJsonAtomic, type Dataset, type Logger } from '@imgpipe/kit';
import { openBackbone } from './backbone-features.js';
import type { RunPlan, ShardPart } from './task-plan.js';

/** Features of the planned shards: <run>/features/<split>-<start>.f32, count x dim float32, one file per part. */
export const FEATURES_DIR = 'features';

export function shardPartFile(runDir: string, part: ShardPart): string {
  return join(runDir, FEATURES_DIR, `${part.split}-${String(part.start).padStart(9, '0')}.f32`);
}

/** Shard K's extraction time (written by its task after its parts; the finish step sums them into run.json). */
export function shardTimingFile(runDir: string, index: number): string {
  return join(runDir, FEATURES_DIR, `shard-${index}.json`);
}

/** The part's file is there and whole (it is written under a temp name and renamed, so whole means done). */
export async function shardPartDone(runDir: string, part: ShardPart, dim: number): Promise<boolean> {
  const info = await stat(shardPartFile(runDir, part)).catch(() => undefined);
  return info?.size === part.count * dim * 4;
}

export function checkIndex(index: number, count: number, what: string): void {
  if (!Number.isInteger(index) || index < 0 || index >= count) throw new UsageError(`expected --index to be one of the plan's ${what}, 0..${count - 1}, got ${index}`);
}

/** A view of one part of a split, so core's batched extraction runs over it as over a whole split. */
function partView(dataset: Dataset, part: ShardPart): Dataset {
  const { manifest } = dataset;
  const meta = manifest.splits[part.split];
  return {
    ...dataset,
    manifest: { ...manifest, splits: { ...manifest.splits, [part.split]: { ...meta, count: part.count } } },
    readPixels: (split, start, count) => dataset.readPixels(split, part.start + start, count),
  };
}

/** `train --task extract --index K`: the backbone over shard K's images; parts already written are skipped. */
export async function extractShard(runDir: string, plan: RunPlan, index: number, log: Logger): Promise<{ images: number; seconds: number }> {
  checkIndex(index, plan.shards.length, `${plan.shards.length} extraction shards`);
  const parts = plan.shards[index]!;
  const todo = [];
  for (const part of parts) if (!(await shardPartDone(runDir, part, plan.feature_dim))) todo.push(part);
  if (todo.length === 0) {
    log.info(`extraction shard ${index}: ${parts.length === 0 ? 'no images in this shard' : 'already done'}; nothing to do`);
    return { images: 0, seconds: 0 };
  }
  const { options } = plan;
  const dataset = await openDataset(options.dataDir);
  const backbone = await openBackbone(options, dataset.manifest.image_size, log);
  let images = 0;
  let seconds = 0;
  try {
    for (const part of todo) {
      const extracted = await extractFeatures({ dataset: partView(dataset, part), split: part.split, backbone, batchSize: options.extractBatchSize, cache: false, verifyPixels: false, log });
      if (extracted.dim !== plan.feature_dim) throw new UsageError(`backbone ${options.backbone} gives ${extracted.dim} features, the plan says ${plan.feature_dim}; was the backbone file replaced?`);
      const { features } = extracted;
      await writeFileAtomic(shardPartFile(runDir, part), new Uint8Array(features.buffer, features.byteOffset, features.byteLength));
      images += part.count;
      seconds += extracted.seconds;
    }
  } finally {
    await backbone.dispose();
  }
  await writeJsonAtomic(shardTimingFile(runDir, index), { shard: index, images, seconds });
  log.info(`extraction shard ${index}: ${images} images in ${seconds.toFixed(1)}s`);
  return { images, seconds };
}
