import type { io } from '@tensorflow/tfjs-core';
import { InputError, UsageError } from '@imgpipe/kit';
import { OnnxGraphBuilder } from './onnx-builder.js';
import { TO_NCHW, TO_NHWC, UnsupportedLayerError, type ConvertContext, type Value } from './tfjs-onnx-context.js';
import { LAYER_CONVERTERS } from './tfjs-onnx-layers.js';
import { NESTED_MODEL, readTopology, type LayerSpec, type LayersTopology, type TensorRef } from './tfjs-layers-topology.js';
import { decodeWeights } from './tfjs-weights.js';

/**
 * A TF.js layers model (model.json + its weights) as an ONNX model cut at a feature layer. The ONNX model takes
 * the same NHWC float input as the TF.js model, transposes it once to NCHW, and gives the feature layer's output
 * in TF's layout under the layer's name. A layer that does not convert throws UnsupportedLayerError.
 */
interface ConvertTfjsOptions {
  /** Default: the model's (first) output layer, as the TF.js path uses. */
  featureLayer?: string;
  /** Height and width when the model leaves them open; default 224. */
  inputSize?: number;
  /** model.json's path, for messages. */
  source: string;
  /** Extra metadata_props (imgpipe.preprocess, ...). */
  metadata?: Record<string, string>;
}

interface ConvertedTfjs {
  bytes: Uint8Array;
  featureLayer: string;
  inputName: string;
  inputSize: number;
  /** The feature layer's output shape without the batch dimension (TF's layout). */
  featureShape: number[];
}

/** Bumped whenever the converter's output changes, so cached conversions are redone. */
export const CONVERTER_VERSION = 1;

export function convertTfjsLayers(json: io.ModelJSON, weightData: Uint8Array, options: ConvertTfjsOptions): ConvertedTfjs {
  const { source } = options;
  const topology = readTopology(json, source);
  const featureLayer = options.featureLayer ?? topology.outputs[0]!.layer;
  if (!topology.layers.has(featureLayer)) {
    throw new UsageError(`--feature-layer '${featureLayer}' is not a layer of ${source} (layers: ${[...topology.layers.keys()].join(', ')})`);
  }
  const inputLayer = topology.layers.get(topology.inputs[0]!.layer)!;
  if (topology.inputs.length !== 1)
    throw new UnsupportedLayerError(inputLayer.name, 'InputLayer', `is one of ${topology.inputs.length} model inputs (one image input converts)`);
  const inputSize = imageSize(inputLayer, options.inputSize, source);
  const feature = { layer: featureLayer, node: 0, tensor: 0 };
  checkSupported(topology, feature);

  const weights = decodeWeights(json.weightsManifest, weightData, source);
  const g = new OnnxGraphBuilder();
  g.unique(featureLayer);
  const inputName = g.unique(inputLayer.name);
  const ctx: ConvertContext = {
    g,
    weight(layer, suffix) {
      const exact = weights.get(`${layer.name}/${suffix}`);
      if (exact) return exact;
      for (const [name, weight] of weights) if (name.endsWith(`/${layer.name}/${suffix}`)) return weight;
      throw new UnsupportedLayerError(layer.name, layer.className, `has no weight '${layer.name}/${suffix}' in the weight files`);
    },
  };
  const input: Value = {
    name: g.node('Transpose', [inputName], { base: inputLayer.name, attrs: { perm: TO_NCHW } }),
    shape: [inputSize, inputSize, 3],
  };
  const values = new Map<string, Value>();
  const valueFor = (ref: TensorRef): Value => {
    const key = `${ref.layer}:${ref.node}`;
    const known = values.get(key);
    if (known) return known;
    const layer = topology.layers.get(ref.layer)!;
    if (ref.tensor !== 0)
      throw new UnsupportedLayerError(layer.name, layer.className, `is used through its output ${ref.tensor} (one output per layer converts)`);
    const inputs = () => callOf(layer, ref.node).map(valueFor);
    const value =
      layer.className === 'InputLayer'
        ? input
        : layer.className === NESTED_MODEL
          ? inputs()[0]!
          : LAYER_CONVERTERS[layer.className]!(ctx, layer, inputs());
    values.set(key, value);
    return value;
  };
  const out = valueFor(feature);
  keepPadsBeforePools(g);
  const last = out.shape.length === 3 ? 'Transpose' : 'Identity';
  g.node(last, [out.name], { output: featureLayer, ...(last === 'Transpose' ? { attrs: { perm: TO_NHWC } } : {}) });
  const bytes = g.encode({
    name: String((json.modelTopology as { config?: { name?: string } }).config?.name ?? 'tfjs_layers'),
    input: { name: inputName, dims: ['n', inputSize, inputSize, 3] },
    output: { name: featureLayer, dims: ['n', ...out.shape] },
    metadata: { 'imgpipe.converted_from': 'tfjs-layers', 'imgpipe.converter_version': String(CONVERTER_VERSION), ...options.metadata },
  });
  return { bytes, featureLayer, inputName, inputSize, featureShape: out.shape };
}

/**
 * ONNX Runtime folds a zero Pad into a following MaxPool's or AveragePool's pads, which leave the padding out of the
 * max and the mean, where TF's ZeroPadding2D makes real zeros. A pad value of -0.0 (equal to 0, but not all-zero
 * bytes, which is what the fusion checks) keeps those Pads; Pads before a Conv still fold, correctly.
 */
function keepPadsBeforePools(g: OnnxGraphBuilder): void {
  const nodes = g.graphNodes;
  for (const pad of nodes.filter((n) => n.opType === 'Pad')) {
    const output = pad.output![0]!;
    if (nodes.some((n) => (n.opType === 'MaxPool' || n.opType === 'AveragePool') && n.input?.includes(output))) {
      pad.input!.push(g.scalar(`${output}:value`, -0));
    }
  }
}

function callOf(layer: LayerSpec, node: number): TensorRef[] {
  const call = layer.inbound[node];
  if (!call) throw new UnsupportedLayerError(layer.name, layer.className, `has no inbound node ${node}`);
  return call;
}

/** The input's height and width, fixed by the model or given; TF.js reads the size from the height as well. */
function imageSize(layer: LayerSpec, given: number | undefined, source: string): number {
  const shape = (layer.config.batch_input_shape ?? layer.config.batch_shape) as (number | null)[] | undefined;
  if (shape?.length !== 4 || (shape[3] !== 3 && shape[3] !== null && shape[3] !== -1)) {
    throw new InputError(`TF.js backbone ${source}: expected an NHWC image input with 3 channels, got shape [${(shape ?? []).join(', ')}]`);
  }
  const fixed = shape[1];
  const size = typeof fixed === 'number' && fixed > 0 ? fixed : (given ?? 224);
  if (typeof shape[2] === 'number' && shape[2] > 0 && shape[2] !== size) {
    throw new UnsupportedLayerError(layer.name, 'InputLayer', `takes ${fixed}x${shape[2]} images (square inputs convert)`);
  }
  return size;
}

/** Every layer the feature output depends on has a converter; else the first such layer, naming the others too. */
function checkSupported(topology: LayersTopology, from: TensorRef): void {
  const seen = new Set<string>();
  const missing: LayerSpec[] = [];
  const stack = [from];
  while (stack.length) {
    const ref = stack.pop()!;
    const key = `${ref.layer}:${ref.node}`;
    if (seen.has(key)) continue;
    seen.add(key);
    const layer = topology.layers.get(ref.layer);
    if (!layer) throw new InputError(`the model's topology refers to a layer '${ref.layer}' it does not define`);
    if (layer.className === 'InputLayer') continue;
    if (!Object.hasOwn(LAYER_CONVERTERS, layer.className) && layer.className !== NESTED_MODEL) missing.push(layer);
    stack.push(...(layer.inbound[ref.node] ?? []));
  }
  if (missing.length === 0) return;
  const first = missing[missing.length - 1]!;
  const others = missing.slice(0, -1).map((l) => `'${l.name}' (${l.className})`);
  throw new UnsupportedLayerError(first.name, first.className, `has no ONNX conversion${others.length ? ` (nor ${others.join(', ')})` : ''}`);
}
