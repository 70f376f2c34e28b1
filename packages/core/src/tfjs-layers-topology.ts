import type { io } from '@tensorflow/tfjs';
import { InputError } from './errors.js';

/**
 * A TF.js layers model.json's topology as plain data: its layers, each call of a layer (inbound node) with the
 * tensors it takes, the model's input and output tensors. Reads Sequential and functional (Model / Functional)
 * configs, with inbound nodes in the Keras 2 list form or the Keras 3 { args } form.
 */
export interface TensorRef {
  layer: string;
  node: number;
  tensor: number;
}

export interface LayerSpec {
  name: string;
  className: string;
  config: Record<string, unknown>;
  /** Per call of the layer: the tensors it was applied to. */
  inbound: TensorRef[][];
}

export interface LayersTopology {
  layers: Map<string, LayerSpec>;
  inputs: TensorRef[];
  outputs: TensorRef[];
}

type RawLayer = { class_name: string; config: Record<string, unknown>; name?: string; inbound_nodes?: unknown[] };

export function readTopology(json: io.ModelJSON, source: string): LayersTopology {
  const topology = json.modelTopology as { model_config?: unknown; class_name?: string; config?: unknown };
  const model = (topology.model_config ?? topology) as { class_name?: string; config?: unknown };
  if (model.class_name === 'Sequential') return sequential(model.config, source);
  if (model.class_name === 'Model' || model.class_name === 'Functional') return functional(model.config as Record<string, unknown>, source);
  throw new InputError(`${source}: unknown layers model class '${String(model.class_name)}'`);
}

function sequential(config: unknown, source: string): LayersTopology {
  const raw = (Array.isArray(config) ? config : (config as { layers?: RawLayer[] }).layers) as RawLayer[] | undefined;
  if (!raw?.length) throw new InputError(`${source}: a Sequential model without layers`);
  const layers = new Map<string, LayerSpec>();
  let previous: string;
  const first = raw[0]!;
  if (first.class_name === 'InputLayer') {
    previous = nameOf(first);
  } else {
    const shape = first.config.batch_input_shape ?? first.config.batch_shape;
    if (!Array.isArray(shape)) throw new InputError(`${source}: the first layer of the Sequential model has no batch_input_shape`);
    previous = `${nameOf(first)}_input`;
    layers.set(previous, { name: previous, className: 'InputLayer', config: { batch_input_shape: shape }, inbound: [] });
  }
  const inputs = [{ layer: previous, node: 0, tensor: 0 }];
  for (const layer of raw) {
    const name = nameOf(layer);
    if (layer.class_name === 'InputLayer') {
      layers.set(name, { name, className: 'InputLayer', config: layer.config, inbound: [] });
      continue;
    }
    layers.set(name, { name, className: layer.class_name, config: layer.config, inbound: [[{ layer: previous, node: 0, tensor: 0 }]] });
    previous = name;
  }
  return { layers, inputs, outputs: [{ layer: previous, node: 0, tensor: 0 }] };
}

function functional(config: Record<string, unknown>, source: string): LayersTopology {
  const layers = new Map<string, LayerSpec>();
  for (const layer of (config.layers ?? []) as RawLayer[]) {
    const name = nameOf(layer);
    const inbound = (layer.inbound_nodes ?? []).map((node) => refsIn(node));
    layers.set(name, { name, className: layer.class_name, config: layer.config, inbound });
  }
  const refs = (value: unknown) => (Array.isArray(value) && typeof value[0] === 'string' ? [value] : ((value ?? []) as unknown[])).map(toRef);
  const inputs = refs(config.input_layers);
  const outputs = refs(config.output_layers);
  if (inputs.length === 0 || outputs.length === 0) throw new InputError(`${source}: a functional model without input_layers or output_layers`);
  return { layers, inputs, outputs };
}

function nameOf(layer: RawLayer): string {
  return String(layer.name ?? layer.config.name);
}

function toRef(value: unknown): TensorRef {
  const [layer, node, tensor] = value as [string, number, number];
  return { layer, node: node ?? 0, tensor: tensor ?? 0 };
}

/** Every tensor reference in one inbound node, in order: [[name, node, tensor, kwargs], ...] or { args: [keras tensors] }. */
function refsIn(node: unknown): TensorRef[] {
  if (Array.isArray(node)) {
    if (typeof node[0] === 'string') return [toRef(node)];
    return node.flatMap((item) => refsIn(item));
  }
  if (node && typeof node === 'object') {
    const history = (node as { config?: { keras_history?: unknown } }).config?.keras_history;
    if (Array.isArray(history)) return [toRef(history)];
    const args = (node as { args?: unknown }).args;
    if (args !== undefined) return refsIn(args);
  }
  return [];
}
