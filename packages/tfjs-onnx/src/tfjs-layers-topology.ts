import type { io } from '@tensorflow/tfjs-core';
import { InputError } from '@imgpipe/kit';

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

/** A model used as a layer of another (Teachable Machine's models): inlined, its name kept as a pass-through layer. */
export const NESTED_MODEL = 'NestedModel';
const MODEL_CLASSES = new Set(['Sequential', 'Model', 'Functional']);

export function readTopology(json: io.ModelJSON, source: string): LayersTopology {
  const topology = json.modelTopology as { model_config?: unknown; class_name?: string; config?: unknown };
  const model = (topology.model_config ?? topology) as { class_name?: string; config?: unknown };
  return inlineNested(readModel(model, source));
}

function readModel(model: { class_name?: string; config?: unknown }, source: string): LayersTopology {
  if (model.class_name === 'Sequential') return sequential(model.config, source);
  if (model.class_name === 'Model' || model.class_name === 'Functional') return functional(model.config as Record<string, unknown>, source);
  throw new InputError(`${source}: unknown layers model class '${String(model.class_name)}'`);
}

/**
 * Replace each model-as-a-layer called once on one tensor by its layers, wired to that tensor; the model's name
 * stays as a pass-through to its output (TF.js numbers a nested model's calls from 1: every reference means its output).
 */
function inlineNested(top: LayersTopology): LayersTopology {
  const aliases = new Set<string>();
  for (const layer of [...top.layers.values()]) {
    if (!MODEL_CLASSES.has(layer.className) || layer.inbound.length !== 1 || layer.inbound[0]!.length !== 1) continue;
    const sub = inlineNested(readModel({ class_name: layer.className, config: layer.config }, layer.name));
    if (sub.inputs.length !== 1 || sub.outputs.length !== 1) continue;
    const subInput = sub.inputs[0]!.layer;
    const outer = layer.inbound[0]![0]!;
    if ([...sub.layers.keys()].some((name) => name !== subInput && top.layers.has(name))) continue;
    for (const inner of sub.layers.values()) {
      if (inner.name === subInput) continue;
      inner.inbound = inner.inbound.map((call) => call.map((ref) => (ref.layer === subInput ? outer : ref)));
      top.layers.set(inner.name, inner);
    }
    top.layers.set(layer.name, { name: layer.name, className: NESTED_MODEL, config: {}, inbound: [[sub.outputs[0]!]] });
    aliases.add(layer.name);
  }
  const fix = (ref: TensorRef) => (aliases.has(ref.layer) ? { ...ref, node: 0 } : ref);
  for (const layer of top.layers.values()) layer.inbound = layer.inbound.map((call) => call.map(fix));
  return { ...top, outputs: top.outputs.map(fix) };
}

/** The batch input shape of a Sequential's first layer, looking inside a nested model. */
function batchInputShape(layer: RawLayer): unknown {
  const own = layer.config.batch_input_shape ?? layer.config.batch_shape;
  if (own || !MODEL_CLASSES.has(layer.class_name)) return own;
  const inner = (Array.isArray(layer.config) ? layer.config : (layer.config.layers as RawLayer[] | undefined)) ?? [];
  const first = inner.find((l) => l.class_name === 'InputLayer') ?? inner[0];
  return first ? batchInputShape(first) : undefined;
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
    const shape = batchInputShape(first);
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
