import type { io, Tensor } from '@tensorflow/tfjs-core';
import type { GraphModel } from '@tensorflow/tfjs-converter';
import type { LayersModel, SymbolicTensor } from '@tensorflow/tfjs-layers';
import { InputError, UsageError } from '@imgpipe/kit';
import type { PreprocessSpec } from '@imgpipe/kit';
import { preprocessPixels } from './preprocess.js';
import type { Tf } from './tfjs-parts-type.js';
import { fileLoadHandler, readModelJson } from './tfjs-io.js';

/** A TF.js model (layers or graph) cut at its feature layer, run on whatever backend tf has: used in-process and in workers. */
interface TfjsRunner {
  format: 'tfjs-layers' | 'tfjs-graph';
  inputSize: number;
  featureLayer: string;
  run(pixels: Uint8Array, count: number): Promise<Float32Array>;
  dispose(): void;
}

interface TfjsRunnerOptions {
  featureLayer?: string;
  preprocess: PreprocessSpec;
  inputSize?: number;
}

export function tfjsFormatOf(json: io.ModelJSON): 'tfjs-layers' | 'tfjs-graph' {
  const topology = json.modelTopology as { node?: unknown; class_name?: string; model_config?: unknown } | undefined;
  if (json.format === 'graph-model' || Array.isArray(topology?.node)) return 'tfjs-graph';
  return 'tfjs-layers';
}

export async function openTfjsRunner(tf: Tf, modelJsonPath: string, options: TfjsRunnerOptions): Promise<TfjsRunner> {
  const json = await readModelJson(modelJsonPath);
  const format = tfjsFormatOf(json);
  const handler = fileLoadHandler(tf.io, modelJsonPath);
  let predict: (x: Tensor) => Tensor | Promise<Tensor>;
  let featureLayer: string;
  let shape: (number | null)[];
  let dispose: () => void;
  try {
    if (format === 'tfjs-layers') {
      const full: LayersModel = await tf.loadLayersModel(handler);
      let model = full;
      if (options.featureLayer) {
        let layer: ReturnType<LayersModel['getLayer']>;
        try {
          layer = full.getLayer(options.featureLayer);
        } catch {
          throw new UsageError(
            `--feature-layer '${options.featureLayer}' is not a layer of ${modelJsonPath} (layers: ${full.layers.map((l) => l.name).join(', ')})`,
          );
        }
        model = tf.model({ inputs: full.inputs, outputs: layer.output as SymbolicTensor });
      }
      featureLayer = options.featureLayer ?? full.outputLayers[0]?.name ?? full.layers[full.layers.length - 1]!.name;
      shape = full.inputs[0]!.shape;
      predict = (x) => model.predict(x) as Tensor;
      dispose = () => full.dispose();
    } else {
      const nodes = ((json.modelTopology as { node?: { name: string }[] }).node ?? []).map((n) => n.name);
      if (options.featureLayer && !nodes.includes(options.featureLayer.replace(/:\d+$/, ''))) {
        throw new UsageError(
          `--feature-layer '${options.featureLayer}' is not a node of ${modelJsonPath} (last nodes: ${nodes.slice(-5).join(', ')})`,
        );
      }
      const model: GraphModel = await tf.loadGraphModel(handler);
      featureLayer = options.featureLayer ?? model.outputNodes[0]!;
      shape = (model.inputs[0]?.shape ?? []) as (number | null)[];
      const inputName = model.inputNodes[0]!;
      // execute() unless the graph has control flow or dynamic shapes, which need executeAsync().
      let needsAsync = false;
      predict = (x) => {
        if (!needsAsync) {
          try {
            return model.execute({ [inputName]: x }, featureLayer) as Tensor;
          } catch (error) {
            if (!/executeAsync/.test((error as Error).message)) throw error;
            needsAsync = true;
          }
        }
        return model.executeAsync({ [inputName]: x }, featureLayer) as Promise<Tensor>;
      };
      dispose = () => model.dispose();
    }
  } catch (error) {
    if (error instanceof UsageError || error instanceof InputError) throw error;
    throw new InputError(`cannot load TF.js model ${modelJsonPath}: ${(error as Error).message}`, { cause: error });
  }
  if (shape.length !== 4 || (shape[3] !== 3 && shape[3] !== -1 && shape[3] !== null)) {
    throw new InputError(`TF.js backbone ${modelJsonPath}: expected an NHWC image input with 3 channels, got shape [${shape.join(', ')}]`);
  }
  const fixed = shape[1];
  const inputSize = typeof fixed === 'number' && fixed > 0 ? fixed : (options.inputSize ?? 224);
  return {
    format,
    inputSize,
    featureLayer,
    async run(pixels, count) {
      const data = preprocessPixels(pixels, count, inputSize, options.preprocess, 'NHWC');
      const x = tf.tensor4d(data, [count, inputSize, inputSize, 3]);
      let y: Tensor | undefined;
      try {
        y = await predict(x);
        return (await y.data()) as Float32Array;
      } finally {
        x.dispose();
        y?.dispose();
      }
    },
    dispose,
  };
}
