import { createFeatureSet, extractFeatures, loadBackbone, type Backbone } from '@imgpipe/engines';
import type { Dataset, Logger } from '@imgpipe/kit';
import { appendMirrored } from './augment.js';
import { checkFineTunable } from './fine-tune.js';
import type { TrainOptions } from './train-options.js';
import type { TrialFeatures } from './trial.js';

export interface SplitFeatures {
  features: TrialFeatures;
  /** Seconds of both backbone passes (0 from the cache). */
  seconds: number;
  fromCache: boolean;
}

/** What opening the backbone reads of the train options. */
export type BackboneOptions = Pick<TrainOptions, 'backbone' | 'device' | 'featureLayer' | 'preprocess' | 'cacheDir' | 'fineTune'>;

/** The backbone, checked for --fine-tune before the sweep: an ONNX or graph backbone cannot be fine-tuned, and nobody should wait for the sweep to learn that. */
export async function openBackbone(options: BackboneOptions, inputSize: number, log: Logger): Promise<Backbone> {
  const backbone = await loadBackbone(options.backbone, {
    device: options.device,
    log,
    inputSize,
    ...(options.featureLayer ? { featureLayer: options.featureLayer } : {}),
    ...(options.preprocess ? { preprocess: options.preprocess } : {}),
    ...(options.cacheDir ? { cacheDir: options.cacheDir } : {}),
    ...(options.fineTune ? { convertTfjs: false } : {}), // fine-tuning trains the TF.js model itself
  });
  if (options.fineTune) {
    await checkFineTunable(backbone.info, backbone.files[0]!, options.fineTune.mode).catch(async (error: unknown) => {
      await backbone.dispose();
      throw error;
    });
  }
  return backbone;
}

/**
 * Features: one backbone pass per split (train, val), plus one over the mirrored training images with
 * --augment flip (appended as extra training rows); from the cache when it has them; disposes the backbone.
 */
export async function extractSplitFeatures(dataset: Dataset, backbone: Backbone, options: TrainOptions, log: Logger): Promise<SplitFeatures> {
  const classes = dataset.manifest.classes.length;
  let seconds = 0;
  let fromCache = true;
  try {
    const extract = async (split: 'train' | 'val', mirror: boolean) => {
      const extracted = await extractFeatures({
        dataset,
        split,
        backbone,
        batchSize: options.extractBatchSize,
        log,
        ...(mirror ? { mirror } : {}),
        ...(options.cacheDir ? { cacheDir: options.cacheDir } : {}),
      });
      seconds += extracted.seconds;
      fromCache &&= extracted.fromCache;
      return extracted.features;
    };
    const sets = [];
    for (const split of ['train', 'val'] as const) {
      sets.push(createFeatureSet(await extract(split, false), await dataset.labels(split), backbone.info.feature_dim, classes));
    }
    const train = options.augment === 'flip' ? appendMirrored(sets[0]!, await extract('train', true)) : sets[0]!;
    return { features: { train, val: sets[1]!, dim: backbone.info.feature_dim, classes }, seconds, fromCache };
  } finally {
    await backbone.dispose();
  }
}
