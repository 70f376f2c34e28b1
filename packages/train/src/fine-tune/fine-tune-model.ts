import { join } from 'node:path';
import { silentLogger, type Logger, type PreprocessSpec } from '@imgpipe/kit';
import { fileLoadHandler, fileSaveHandler, preprocessPixels, type Tf } from '@imgpipe/engines';
import { freezeBatchNormStatistics, fuseTrainingLayers } from '@imgpipe/training-kernels';
import { type BatchNormStatistics, type FineTuneMode, unfrozenLayers } from './fine-tune-types.js';

// Types through engines' Tf: this package does not depend on @tensorflow/tfjs itself.
export type LayersModel = Awaited<ReturnType<Tf['loadLayersModel']>>;
type SymbolicTensor = ReturnType<Tf['input']>;
type Tensor = ReturnType<Tf['tensor']>;

/** The graph that fine-tuning trains, and the two models whose layers it shares (saved as they were loaded). */
export interface FineTuneModel {
  /** input -> backbone up to its feature layer -> the head's layers. */
  model: LayersModel;
  /** The whole backbone as loaded (its layers past the feature layer are not in `model`). */
  full: LayersModel;
  head: LayersModel;
  /** Layers frozen for --fine-tune bn or last:N, made trainable again before saving. */
  frozen: { trainable: boolean }[];
}

/**
 * One graph: input -> backbone up to its feature layer -> the head's own layers (not the head as a nested model:
 * TF.js passes `training` only to the layers of the graph being trained, and the head has dropout). In mode 'bn'
 * every backbone layer but BatchNormalization is frozen, in last:N every backbone layer with weights but the last N;
 * BatchNormalization normalises with its frozen moving statistics unless bnStatistics is 'update'; then, on wasm,
 * its layers train with fused kernels (fuseTrainingLayers). Built the same way in-process and in each worker.
 */
export async function buildFineTuneModel(
  tf: Tf,
  backboneModelJson: string,
  headModelJson: string,
  featureLayer: string,
  mode: FineTuneMode,
  bnStatistics: BatchNormStatistics = 'frozen',
  log: Logger = silentLogger,
): Promise<FineTuneModel> {
  const full = await tf.loadLayersModel(fileLoadHandler(tf.io, backboneModelJson));
  let head: LayersModel | undefined;
  try {
    head = await tf.loadLayersModel(fileLoadHandler(tf.io, headModelJson));
    let t = full.getLayer(featureLayer).output as SymbolicTensor;
    if (t.shape.length > 2) t = tf.layers.flatten({ name: 'imgpipe_fine_tune_flatten' }).apply(t) as SymbolicTensor;
    for (const layer of head.layers) if (layer.getClassName() !== 'InputLayer') t = layer.apply(t) as SymbolicTensor;
    const model = tf.model({ inputs: full.inputs, outputs: t, name: 'imgpipe_fine_tune' });
    const frozen: { trainable: boolean }[] = [];
    const headLayers = new Set(head.layers);
    const backbone = model.layers.filter((layer) => !headLayers.has(layer) && layer.weights.length > 0);
    const last = unfrozenLayers(mode);
    const keep =
      mode === 'bn'
        ? backbone.filter((layer) => layer.getClassName() === 'BatchNormalization')
        : last === undefined
          ? backbone
          : backbone.slice(Math.max(0, backbone.length - last));
    const trained = new Set(keep);
    for (const layer of backbone) {
      if (!trained.has(layer) && layer.trainable) {
        layer.trainable = false;
        frozen.push(layer);
      }
    }
    if (last !== undefined) {
      log.debug(
        `--fine-tune ${mode}: training ${keep.map((layer) => layer.name).join(', ')} of the backbone's ${backbone.length} layers with weights`,
      );
      if (last > backbone.length)
        log.warn(`--fine-tune ${mode}: the backbone has ${backbone.length} layers with weights up to its feature layer, so all of them train`);
    }
    if (bnStatistics === 'frozen') freezeBatchNormStatistics(tf, model);
    const fused = fuseTrainingLayers(tf, model);
    if (fused.batchNorm + fused.relu6 + fused.unfusedConv > 0) {
      log.debug(
        `fine-tuning with fused training layers: ${fused.batchNorm} BatchNormalization, ${fused.relu6} ReLU6, ${fused.unfusedConv} Conv2D unfused (frozen, or on the input)`,
      );
    }
    return { model, full, head, frozen };
  } catch (error) {
    head?.dispose();
    full.dispose();
    throw error;
  }
}

/** n images as the fine-tuning model's input: NHWC floats, preprocessed as for feature extraction. */
export function inputTensor(tf: Tf, pixels: Uint8Array, n: number, size: number, preprocess: PreprocessSpec): Tensor {
  return tf.tensor4d(preprocessPixels(pixels, n, size, preprocess, 'NHWC'), [n, size, size, 3]);
}

/**
 * Softmax rows of n images in inference mode: the same computation as loadModel's predict (backbone to the feature
 * layer, then the head), so a model saved from fine-tuning reproduces these numbers. The array owns its buffer.
 */
export async function predictProbabilities(
  tf: Tf,
  model: LayersModel,
  pixels: Uint8Array,
  n: number,
  size: number,
  preprocess: PreprocessSpec,
): Promise<Float32Array> {
  const probs = tf.tidy(() => model.predict(inputTensor(tf, pixels, n, size, preprocess)) as Tensor);
  try {
    return new Float32Array((await probs.data()) as Float32Array);
  } finally {
    probs.dispose();
  }
}

/** Number of trained values. */
export function trainedParameters(model: LayersModel): number {
  return model.trainableWeights.reduce((sum: number, w) => sum + w.shape.reduce((a: number, b: number | null) => a * (b ?? 1), 1), 0);
}

/** backbone/ and head/ under outDir, every layer trainable (saved as loaded); training may go on after it. */
export async function saveFineTuned(parts: FineTuneModel, outDir: string): Promise<void> {
  for (const layer of parts.frozen) layer.trainable = true;
  try {
    await parts.full.save(fileSaveHandler(join(outDir, 'backbone')));
    await parts.head.save(fileSaveHandler(join(outDir, 'head')));
  } finally {
    for (const layer of parts.frozen) layer.trainable = false;
  }
}

/**
 * Layers count their users: the fine-tuning graph holds the backbone's layers up to the feature layer and (a second
 * time) the head's layers. Disposing it, then the head, then the backbone's other layers frees each once.
 */
export function disposeFineTuneModel({ model, full, head }: FineTuneModel): void {
  const inGraph = new Set(model.layers);
  model.dispose();
  head.dispose();
  for (const layer of full.layers) if (!inGraph.has(layer)) layer.dispose();
}
