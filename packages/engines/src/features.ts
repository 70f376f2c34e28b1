import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Backbone } from './backbone-types.js';
import { resolveCacheDir } from './cache-dir.js';
import { mirrorImages } from './mirror.js';
import { PixelHasher, verifyPixelFile } from './verified-pixels.js';
import {
  type Dataset,
  FailureError,
  UsageError,
  sha256,
  writeFileAtomic,
  writeJsonAtomic,
  silentLogger,
  type Logger,
  createProgress,
  type ProgressEvent,
  type SplitName,
} from '@imgpipe/kit';

interface ExtractFeaturesOptions {
  dataset: Dataset;
  split: SplitName;
  backbone: Backbone;
  batchSize: number;
  /** Cache root (features go in <cacheDir>/features/); default $IMGPIPE_CACHE_DIR or ~/.cache/imgpipe. */
  cacheDir?: string;
  /** true: features of the mirrored images (train --augment flip), cached under their own key. */
  mirror?: boolean;
  /** false: neither read nor write the cache. */
  cache?: boolean;
  /**
   * Hash the pixels as they are read and check them against the manifest (default true). A caller that reads part
   * of a split (train's extraction shards) turns it off and verifies the whole file itself, once.
   */
  verifyPixels?: boolean;
  log?: Logger;
  /** Progress events (tests); the bar or lines go to stderr unless the log is quiet. */
  onProgress?: (event: ProgressEvent) => void;
}

interface ExtractedFeatures {
  /** count*dim, row i = image i of the split, in the split's order. */
  features: Float32Array;
  count: number;
  dim: number;
  fromCache: boolean;
  seconds: number;
  /** The cache key (sha256 of backbone, feature layer, preprocessing, split pixels). */
  key: string;
}

/** What the cached features depend on; any change gives a new key. Mirrored features add `view` (plain keys are unchanged). */
function featureCacheKey(backbone: Backbone, pixelsSha256: string, mirror = false): string {
  const { sha256: model, feature_layer, preprocess, input_size, layout } = backbone.info;
  return sha256(
    JSON.stringify({
      format: 'imgpipe-features/1',
      model,
      feature_layer,
      preprocess,
      input_size,
      layout,
      pixels: pixelsSha256,
      ...(mirror ? { view: 'mirror' } : {}),
    }),
  );
}

interface CacheMeta {
  format: 'imgpipe-features/1';
  key: string;
  count: number;
  dim: number;
  /** sha256 of the .f32 file: checked on every read, so a damaged entry is recomputed, never trusted. */
  sha256: string;
  backbone: string;
  feature_layer: string;
  split: string;
  view?: 'mirror';
  dataset: string;
  created: string;
}

/**
 * Features of one dataset split through a backbone: batched, up to backbone.concurrency batches in flight (the
 * TF.js wasm worker pool), progress and images/s on stderr. Cached on disk under the key above: the second run
 * reads the cache. The .f32 file is written first and the .json (the marker) last, both atomically.
 */
export async function extractFeatures(options: ExtractFeaturesOptions): Promise<ExtractedFeatures> {
  const { dataset, split, backbone, batchSize, log = silentLogger } = options;
  const started = performance.now();
  const meta = dataset.manifest.splits[split];
  const { count } = meta;
  const size = dataset.manifest.image_size;
  if (size !== backbone.info.input_size) {
    throw new UsageError(
      `dataset ${dataset.dir} holds ${size}x${size} images but backbone ${backbone.info.name} expects ${backbone.info.input_size}x${backbone.info.input_size}; run prep-data with --img-dimensions ${backbone.info.input_size}, or pick another --backbone`,
    );
  }
  if (!Number.isInteger(batchSize) || batchSize < 1) throw new UsageError(`expected --batch-size to be a positive integer, got ${batchSize}`);
  const mirror = options.mirror === true;
  const key = featureCacheKey(backbone, meta.pixels.sha256, mirror);
  const label = mirror ? `${split} (mirrored)` : split;
  const dir = join(resolveCacheDir(options.cacheDir), 'features');
  const dataPath = join(dir, `${key}.f32`);
  const metaPath = join(dir, `${key}.json`);
  const dim = backbone.info.feature_dim;

  // The key names the manifest's pixel hash, but an entry is only ever written after the pixels read were verified
  // against it, and a hit is used only once the file on disk is verified too: the cache is keyed by verified content.
  if (options.cache !== false) {
    const cached = await readCache(dataPath, metaPath, count, dim, log);
    if (cached) {
      await verifyPixelFile(dataset, split);
      checkFinite(cached, dim, split);
      const seconds = (performance.now() - started) / 1000;
      log.info(`features ${label}: ${count} x ${dim} from cache ${dataPath}`);
      return { features: cached, count, dim, fromCache: true, seconds, key };
    }
  }
  const hasher = new PixelHasher(dataset, split);
  const imageBytes = size * size * dataset.manifest.channels;

  const features = new Float32Array(count * dim);
  const progress = createProgress({ label: `features ${label}`, total: count, unit: 'images', quiet: log.quiet, onEvent: options.onProgress });
  const batches = Math.ceil(count / batchSize);
  let nextBatch = 0;
  let done = 0;
  const claim = () => (nextBatch < batches ? nextBatch++ : undefined);
  const read = (b: number) => {
    const start = b * batchSize;
    const n = Math.min(batchSize, count - start);
    return dataset.readPixels(split, start, n).then((pixels) => {
      hasher.add(start * imageBytes, pixels);
      return { start, n, pixels: mirror ? mirrorImages(pixels, n, size) : pixels };
    });
  };
  // Each lane reads its next batch while the current one runs, so disk reads overlap inference.
  const lane = async () => {
    let b = claim();
    let pending = b === undefined ? undefined : read(b);
    while (pending) {
      const { start, n, pixels } = await pending;
      b = claim();
      pending = b === undefined ? undefined : read(b);
      const out = await backbone.extract(pixels, n);
      if (out.length !== n * dim) throw new Error(`backbone returned ${out.length} values for ${n} images of ${dim} features`);
      features.set(out, start * dim);
      done += n;
      const seconds = (performance.now() - started) / 1000;
      progress.update(done, `${(done / seconds).toFixed(1)} images/s`);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(backbone.concurrency, batches)) }, lane));
  if (options.verifyPixels !== false) hasher.verify();
  checkFinite(features, dim, split);
  const seconds = (performance.now() - started) / 1000;
  progress.finish(`${(count / Math.max(seconds, 1e-9)).toFixed(1)} images/s`);
  log.info(
    `features ${label}: ${count} images in ${seconds.toFixed(1)}s, ${(count / Math.max(seconds, 1e-9)).toFixed(1)} images/s (${backbone.info.name}, ${backbone.info.format} on ${backbone.device})`,
  );

  if (options.cache !== false) {
    await writeFileAtomic(dataPath, new Uint8Array(features.buffer, features.byteOffset, features.byteLength));
    const record: CacheMeta = {
      format: 'imgpipe-features/1',
      key,
      count,
      dim,
      sha256: sha256(new Uint8Array(features.buffer, features.byteOffset, features.byteLength)),
      backbone: backbone.info.name,
      feature_layer: backbone.info.feature_layer,
      split,
      ...(mirror ? { view: 'mirror' as const } : {}),
      dataset: dataset.dir,
      created: new Date().toISOString(),
    };
    await writeJsonAtomic(metaPath, record);
  }
  return { features, count, dim, fromCache: false, seconds, key };
}

/** A cache entry, or undefined when there is none or it is damaged (then a warning, and it is recomputed). */
async function readCache(dataPath: string, metaPath: string, count: number, dim: number, log: Logger): Promise<Float32Array | undefined> {
  let meta: CacheMeta;
  try {
    meta = JSON.parse(await readFile(metaPath, 'utf8')) as CacheMeta;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT')
      log.warn(`feature cache ${metaPath}: unreadable (${(error as Error).message}); recomputing`);
    return undefined;
  }
  const bytes = await readFile(dataPath).catch(() => undefined);
  const problem =
    meta.count !== count || meta.dim !== dim
      ? `lists ${meta.count} x ${meta.dim}, expected ${count} x ${dim}`
      : !bytes
        ? 'its .f32 file is missing'
        : typeof meta.sha256 !== 'string'
          ? 'it has no checksum (written by an older version)'
          : bytes.length !== count * dim * 4
            ? `${bytes.length} bytes, expected ${count * dim * 4}`
            : sha256(bytes) !== meta.sha256
              ? 'its checksum does not match (damaged)'
              : undefined;
  if (problem !== undefined) {
    log.warn(`feature cache ${dataPath}: ${problem}; recomputing`);
    return undefined;
  }
  const out = new Float32Array(count * dim);
  new Uint8Array(out.buffer).set(bytes!);
  return out;
}

/**
 * NaN or infinite features would train a head on garbage: refuse them, naming the first bad image. `first` is the
 * split position of the first row (features of part of a split).
 */
export function checkFinite(features: Float32Array, dim: number, split: SplitName, first = 0): void {
  for (let i = 0; i < features.length; i++) {
    if (!Number.isFinite(features[i]!)) {
      throw new FailureError(
        `features ${split}: image ${first + Math.floor(i / dim)} of the ${split} split has a non-finite feature (${features[i]}); check the backbone (its weights or --preprocess) and that image`,
      );
    }
  }
}
