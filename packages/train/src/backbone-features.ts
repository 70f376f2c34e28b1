import { dirname, join } from 'node:path';
import { createFeatureSet, extractFeatures, loadBackbone, readModelJson, resolveBackbone, weightPaths, type Backbone } from '@imgpipe/engines';
import type { BackboneInfo, Dataset, Logger } from '@imgpipe/kit';
import { appendMirrored } from './augment.js';
import { checkFineTunable } from './fine-tune/fine-tune.js';
import type { TrainOptions } from './train-options.js';
import type { TrialFeatures } from './sweep/trial.js';

interface SplitFeatures {
  features: TrialFeatures;
  /** Seconds of both backbone passes (0 from the cache). */
  seconds: number;
  fromCache: boolean;
}

/** What opening the backbone reads of the train options. */
type BackboneOptions = Pick<TrainOptions, 'backbone' | 'device' | 'featureLayer' | 'preprocess' | 'cacheDir' | 'fineTune'>;

/** The TF.js layers model that --fine-tune trains: its model.json first, then its weight files. */
interface TunableBackbone {
  files: string[];
  info: BackboneInfo;
}

/** The backbone that extracts the sweep's features, and under --fine-tune the TF.js model that fine-tuning trains. */
type OpenedBackbone = Backbone & { tunable?: TunableBackbone };

/**
 * The backbone, checked for --fine-tune before the sweep: an ONNX or graph backbone cannot be fine-tuned, and nobody
 * should wait for the sweep to learn that. A TF.js layers backbone still extracts the sweep's features converted, on
 * ONNX Runtime (about ten times TF.js wasm's speed); only fine-tuning loads the TF.js model (tunable).
 */
export async function openBackbone(options: BackboneOptions, inputSize: number, log: Logger): Promise<OpenedBackbone> {
  const loadOptions = {
    device: options.device,
    log,
    inputSize,
    ...(options.featureLayer ? { featureLayer: options.featureLayer } : {}),
    ...(options.preprocess ? { preprocess: options.preprocess } : {}),
    ...(options.cacheDir ? { cacheDir: options.cacheDir } : {}),
  };
  const backbone = await loadBackbone(options.backbone, loadOptions);
  if (!options.fineTune) return backbone;
  try {
    const tunable =
      backbone.info.converted_from === 'tfjs-layers'
        ? await tfjsOfConverted(backbone.info, options.backbone, loadOptions)
        : { files: backbone.files, info: backbone.info };
    await checkFineTunable(tunable.info, tunable.files[0]!, options.fineTune.mode);
    return Object.assign(backbone, { tunable });
  } catch (error) {
    await backbone.dispose();
    throw error;
  }
}

/**
 * A fine-tuned TF.js layers backbone converted to ONNX as loadBackbone converts any (into the cache), so that
 * eval-model and serve run it on ONNX Runtime; undefined where it stays on TF.js (--device wasm, a layer that does not
 * convert, ...), as the original would have.
 */
export async function convertTuned(tuned: TunableBackbone, options: BackboneOptions, log: Logger): Promise<TunableBackbone | undefined> {
  let backbone: Backbone;
  try {
    backbone = await loadBackbone(tuned.files[0]!, {
      device: options.device,
      log,
      inputSize: tuned.info.input_size,
      featureLayer: tuned.info.feature_layer,
      preprocess: tuned.info.preprocess.name,
      ...(options.cacheDir ? { cacheDir: options.cacheDir } : {}),
    });
  } catch (error) {
    log.warn(`the fine-tuned backbone stays on TF.js: converting it to ONNX failed (${error instanceof Error ? error.message : String(error)})`);
    return undefined;
  }
  try {
    return backbone.info.engine === 'onnxruntime'
      ? { files: backbone.files, info: { ...backbone.info, name: tuned.info.name, source: tuned.info.source } }
      : undefined;
  } finally {
    await backbone.dispose();
  }
}

/** The TF.js layers model a converted backbone came from, described as loadBackbone describes it on TF.js. */
async function tfjsOfConverted(converted: BackboneInfo, spec: string, options: Parameters<typeof resolveBackbone>[1]): Promise<TunableBackbone> {
  const resolved = await resolveBackbone(spec, options);
  const json = await readModelJson(resolved.path);
  const files = [resolved.path, ...weightPaths(json, resolved.path).map((p) => join(dirname(resolved.path), p))];
  const { converted_from: _from, source_sha256, ...rest } = converted;
  // The conversion hashes model.json and its weights as the TF.js loader does; its output is named for the TF.js layer.
  return { files, info: { ...rest, format: 'tfjs-layers', sha256: source_sha256!, engine: 'tfjs' } };
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
