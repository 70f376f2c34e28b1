import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { backboneSourceSha256, checkFinite, extractFeatures } from '@imgpipe/engines';
import { InputError, sha256, UsageError, writeFileAtomic, writeJsonAtomic, type Dataset, type Logger } from '@imgpipe/kit';
import { openBackbone } from '../backbone-features.js';
import { verifyPlanInputs } from './task-inputs.js';
import { PLAN_FILE, type RunPlan, type ShardPart } from './task-plan.js';

/** Features of the planned shards: <run>/features/<split>-<start>.f32, count x dim float32, one file per part. */
const FEATURES_DIR = 'features';

export function shardPartFile(runDir: string, part: ShardPart): string {
  return join(runDir, FEATURES_DIR, `${part.split}-${String(part.start).padStart(9, '0')}.f32`);
}

/** Shard K's extraction time (written by its task after its parts; the finish step sums them into run.json). */
export function shardTimingFile(runDir: string, index: number): string {
  return join(runDir, FEATURES_DIR, `shard-${index}.json`);
}

/** The part's marker, written after its .f32 file: its size and sha256, checked on every read. */
function shardPartMarker(runDir: string, part: ShardPart): string {
  return shardPartFile(runDir, part).replace(/\.f32$/, '.json');
}

interface PartMarker {
  count: number;
  dim: number;
  sha256: string;
}

/**
 * A part's features, verified as the single-process feature cache verifies its entries: the marker is there, the
 * file has its size and sha256, every value is finite. `missing`: not extracted yet; `problem`: damaged.
 */
export async function readShardPart(
  runDir: string,
  part: ShardPart,
  dim: number,
): Promise<{ features: Float32Array } | { missing: true } | { problem: string }> {
  const file = shardPartFile(runDir, part);
  let marker: PartMarker;
  try {
    marker = JSON.parse(await readFile(shardPartMarker(runDir, part), 'utf8')) as PartMarker;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return { missing: true };
    return { problem: `its marker ${shardPartMarker(runDir, part)} is unreadable (${(error as Error).message})` };
  }
  const bytes = await readFile(file).catch(() => undefined);
  const expected = part.count * dim * 4;
  const problem =
    marker.count !== part.count || marker.dim !== dim
      ? `its marker lists ${marker.count} x ${marker.dim} features, the plan ${part.count} x ${dim}`
      : !bytes
        ? 'the file is missing'
        : bytes.length !== expected
          ? `${bytes.length} bytes, expected ${expected}`
          : sha256(bytes) !== marker.sha256
            ? 'its checksum does not match (damaged)'
            : undefined;
  if (problem !== undefined) return { problem };
  const features = new Float32Array(part.count * dim);
  new Uint8Array(features.buffer).set(bytes!);
  try {
    checkFinite(features, dim, part.split, part.start);
  } catch (error) {
    return { problem: (error as Error).message };
  }
  return { features };
}

async function writeShardPart(runDir: string, part: ShardPart, features: Float32Array, dim: number): Promise<void> {
  const bytes = new Uint8Array(features.buffer, features.byteOffset, features.byteLength);
  await writeFileAtomic(shardPartFile(runDir, part), bytes);
  await writeJsonAtomic(shardPartMarker(runDir, part), { count: part.count, dim, sha256: sha256(bytes) } satisfies PartMarker);
}

export function checkIndex(index: number, count: number, what: string): void {
  if (!Number.isInteger(index) || index < 0 || index >= count)
    throw new UsageError(`expected --index to be one of the plan's ${what}, 0..${count - 1}, got ${index}`);
}

/** A view of one part of a split, so engines' batched extraction (extractFeatures) runs over it as over a whole split. */
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
  const dataset = await verifyPlanInputs(runDir, plan);
  const todo = [];
  for (const part of parts) {
    const read = await readShardPart(runDir, part, plan.feature_dim);
    if ('problem' in read) log.warn(`${shardPartFile(runDir, part)}: ${read.problem}; extracting it again`);
    if (!('features' in read)) todo.push(part);
  }
  if (todo.length === 0) {
    log.info(`extraction shard ${index}: ${parts.length === 0 ? 'no images in this shard' : 'already done'}; nothing to do`);
    return { images: 0, seconds: 0 };
  }
  const { options } = plan;
  const backbone = await openBackbone(options, dataset.manifest.image_size, log);
  let images = 0;
  let seconds = 0;
  try {
    if (backboneSourceSha256(backbone.info) !== plan.inputs.backbone_sha256) {
      throw new InputError(
        `${join(runDir, PLAN_FILE)}: the backbone ${options.backbone} changed since the run was planned (replaced while this task started?); plan a new run`,
      );
    }
    for (const part of todo) {
      const extracted = await extractFeatures({
        dataset: partView(dataset, part),
        split: part.split,
        backbone,
        batchSize: options.extractBatchSize,
        cache: false,
        verifyPixels: false,
        log,
      });
      if (extracted.dim !== plan.feature_dim)
        throw new UsageError(
          `backbone ${options.backbone} gives ${extracted.dim} features, the plan says ${plan.feature_dim}; was the backbone file replaced?`,
        );
      await writeShardPart(runDir, part, extracted.features, plan.feature_dim);
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
