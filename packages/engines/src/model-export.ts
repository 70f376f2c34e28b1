import { readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { LayersModel } from '@tensorflow/tfjs-layers';
import { InputError, type Logger, type ModelCard } from '@imgpipe/kit';
import { composeWholeModel, type DenseLayer } from './onnx-whole-model.js';
import { activationName } from '@imgpipe/tfjs-onnx/tfjs-onnx-activations';
import { UnsupportedLayerError } from '@imgpipe/tfjs-onnx/tfjs-onnx-context';
import { readModelJson, weightPaths } from './tfjs-io.js';

/**
 * model.onnx for a model directory being written: the backbone's ONNX graph (an ONNX backbone as it is; a TF.js
 * layers backbone, fine-tuned or not, through the TF.js -> ONNX converter) composed with the trained head.
 * Undefined, with the reason logged, for a backbone that has no ONNX form (a TF.js graph model, a layer that does
 * not convert): such a model is served by its two parts.
 */
export async function exportWholeModel(card: ModelCard, backboneFiles: string[], head: LayersModel, log: Logger): Promise<Uint8Array | undefined> {
  const path = backboneFiles[0]!;
  const backbone = path.endsWith('.json')
    ? await convertedBackbone(path, card, log)
    : { backbone: new Uint8Array(await readFile(path)), featureValue: card.backbone.feature_layer, layout: card.backbone.layout };
  if (!backbone) return undefined;
  return composeWholeModel({
    ...backbone,
    source: path,
    inputSize: card.input.size,
    preprocess: card.preprocess,
    head: headLayers(head),
    labels: card.labels,
  });
}

async function convertedBackbone(
  path: string,
  card: ModelCard,
  log: Logger,
): Promise<{ backbone: Uint8Array; featureValue: string; layout: 'NHWC' } | undefined> {
  const [{ tfjsFormatOf }, { convertTfjsLayers }] = await Promise.all([import('./backbone-tfjs-runner.js'), import('@imgpipe/tfjs-onnx')]);
  const json = await readModelJson(path);
  if (tfjsFormatOf(json) !== 'tfjs-layers') {
    log.info(
      `model.onnx not written: the backbone ${path} is a TF.js graph model, which has no ONNX conversion; the model is served by its two parts`,
    );
    return undefined;
  }
  const weights = Buffer.concat(await Promise.all(weightPaths(json, path).map((p) => readFile(join(dirname(path), p)))));
  try {
    const converted = convertTfjsLayers(json, weights, { source: path, featureLayer: card.backbone.feature_layer, inputSize: card.input.size });
    return { backbone: converted.bytes, featureValue: converted.featureLayer, layout: 'NHWC' };
  } catch (error) {
    if (!(error instanceof UnsupportedLayerError)) throw error;
    log.info(`model.onnx not written: backbone ${error.message}; the model is served by its two parts`);
    return undefined;
  }
}

/** The head's dense layers with their trained weights (Dropout is the identity at inference). */
function headLayers(head: LayersModel): DenseLayer[] {
  const layers: DenseLayer[] = [];
  for (const layer of head.layers) {
    const kind = layer.getClassName();
    if (kind === 'InputLayer' || kind === 'Dropout') continue;
    if (kind !== 'Dense') throw new InputError(`the head has a ${kind} layer '${layer.name}'; only Dense and Dropout layers export to model.onnx`);
    const [kernel, bias] = layer.getWeights();
    const [inputs, units] = kernel!.shape as [number, number];
    const activation = activationName(layer.getConfig().activation);
    if (activation !== 'linear' && activation !== 'relu' && activation !== 'softmax')
      throw new InputError(`the head's layer '${layer.name}' has activation '${activation}', which model.onnx does not export`);
    layers.push({
      inputs,
      units,
      kernel: Float32Array.from(kernel!.dataSync() as Float32Array),
      ...(bias ? { bias: Float32Array.from(bias.dataSync() as Float32Array) } : {}),
      activation,
    });
  }
  return layers;
}
