import { join } from 'node:path';
import { extractFeatures, loadBackbone, type Backbone, type Device } from '@imgpipe/engines';
import { messageOf, SPLIT_NAMES, type Logger, type ProgressEvent, type SplitName } from '@imgpipe/kit';
import type { RunInputs } from './run-inputs.js';

/** Every image of the dataset, train then val then test, with its features (count x dim, row-major). */
interface AllFeatures {
  features: Float32Array;
  dim: number;
  count: number;
  /** Where each split starts in the rows above. */
  offsets: Record<SplitName, number>;
  fromCache: boolean;
  seconds: number;
}

interface FeatureOptions {
  device: Device;
  batchSize: number;
  cacheDir?: string | undefined;
  log: Logger;
  onProgress?: ((event: ProgressEvent) => void) | undefined;
}

/**
 * The run's backbone, opened as train opened it (its --backbone spec, feature layer and preprocessing), so the
 * feature cache train filled is hit. A fine-tuned run, or a spec that no longer resolves to the same file (a moved
 * path), uses the model's own backbone/ instead: right features, recomputed.
 */
async function openRunBackbone(inputs: RunInputs, options: FeatureOptions): Promise<Backbone> {
  const { backbone: info, card, dataset } = inputs;
  const common = {
    device: options.device,
    log: options.log,
    inputSize: dataset.manifest.image_size,
    featureLayer: info.feature_layer,
    preprocess: info.preprocess.name,
    ...(options.cacheDir ? { cacheDir: options.cacheDir } : {}),
  };
  if (!inputs.fineTuned && typeof info.spec === 'string') {
    try {
      const backbone = await loadBackbone(info.spec, common);
      if (backbone.info.sha256 === info.sha256) return backbone;
      await backbone.dispose();
      options.log.warn(`backbone ${info.spec} is not the one the run used (sha256 differs); using ${join(inputs.modelDir, card.backbone.path)}`);
    } catch (error) {
      options.log.warn(`backbone ${info.spec}: ${messageOf(error)}; using ${join(inputs.modelDir, card.backbone.path)}`);
    }
  }
  return loadBackbone(join(inputs.modelDir, card.backbone.path), {
    ...common,
    featureLayer: card.backbone.feature_layer,
    preprocess: card.preprocess.name,
  });
}

/** Features of train, val and test through the feature cache: only what is not cached is extracted. */
export async function allFeatures(inputs: RunInputs, options: FeatureOptions): Promise<AllFeatures> {
  const { dataset } = inputs;
  const backbone = await openRunBackbone(inputs, options);
  try {
    const dim = backbone.info.feature_dim;
    const count = SPLIT_NAMES.reduce((sum, split) => sum + dataset.manifest.splits[split].count, 0);
    const features = new Float32Array(count * dim);
    const offsets = {} as Record<SplitName, number>;
    let at = 0;
    let fromCache = true;
    let seconds = 0;
    for (const split of SPLIT_NAMES) {
      offsets[split] = at;
      const extracted = await extractFeatures({
        dataset,
        split,
        backbone,
        batchSize: options.batchSize,
        log: options.log,
        ...(options.cacheDir ? { cacheDir: options.cacheDir } : {}),
        ...(options.onProgress ? { onProgress: options.onProgress } : {}),
      });
      features.set(extracted.features, at * dim);
      at += extracted.count;
      fromCache &&= extracted.fromCache;
      seconds += extracted.seconds;
    }
    return { features, dim, count, offsets, fromCache, seconds };
  } finally {
    await backbone.dispose();
  }
}
