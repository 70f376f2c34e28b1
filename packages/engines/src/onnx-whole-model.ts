import { InputError, type PreprocessSpec } from '@imgpipe/kit';
import { decodeOnnx, graphInput, onnx } from './onnx-graph.js';

/**
 * The whole classifier as one ONNX graph: uint8 RGB NHWC `pixels` -> the recorded preprocessing -> the backbone cut
 * at its feature value -> the head's dense layers -> softmax `probabilities`. Built from the backbone's own graph
 * (an ONNX backbone, or a TF.js one converted); every op it adds, and the ones it rewrites, are the plainest that
 * say it, so that runtimes with few ops (OpenCV's DNN module) read the file too: Clip with constant bounds becomes
 * HardSigmoid and Mul (OpenCV 4.6 reads Clip only in its opset-6 form), Identity nodes are dropped, dense layers
 * are Gemm with transB (the layout OpenCV's importer expects), preprocessing is a BatchNormalization on NCHW.
 */
export const WHOLE_MODEL_FILE = 'model.onnx';
export const WHOLE_MODEL_INPUT = 'pixels';
export const WHOLE_MODEL_OUTPUT = 'probabilities';

/** One dense layer of the head, in TF's layout: kernel [inputs, units] row-major. */
export interface DenseLayer {
  inputs: number;
  units: number;
  kernel: Float32Array;
  bias?: Float32Array;
  activation: 'linear' | 'relu' | 'softmax';
}

interface WholeModelSpec {
  /** The backbone's ONNX bytes and where they came from (for messages). */
  backbone: Uint8Array;
  source: string;
  /** The value the head reads: the pooled features. */
  featureValue: string;
  /** The backbone's input layout (NHWC for converted TF.js models). */
  layout: 'NCHW' | 'NHWC';
  inputSize: number;
  preprocess: PreprocessSpec;
  head: DenseLayer[];
  labels: string[];
}

type Node = import('onnx-proto').onnx.INodeProto;
type Tensor = import('onnx-proto').onnx.ITensorProto;
const { DataType } = onnx.TensorProto;
const { AttributeType } = onnx.AttributeProto;
const PREFIX = 'imgpipe';

function floats(name: string, dims: number[], values: ArrayLike<number>): Tensor {
  const data = Float32Array.from(values);
  return { name, dims, dataType: DataType.FLOAT, rawData: new Uint8Array(data.buffer) };
}

function node(opType: string, input: string[], output: string, attrs: import('onnx-proto').onnx.IAttributeProto[] = []): Node {
  return { name: output, opType, input, output: [output], attribute: attrs };
}
const intAttr = (name: string, i: number) => ({ name, type: AttributeType.INT, i });
const intsAttr = (name: string, ints: number[]) => ({ name, type: AttributeType.INTS, ints });
const floatAttr = (name: string, f: number) => ({ name, type: AttributeType.FLOAT, f });

/** A scalar float constant: an initializer's value (raw or float_data), or undefined when it is not one. */
function constantScalar(initializers: Map<string, Tensor>, name: string | undefined): number | undefined {
  const t = name ? initializers.get(name) : undefined;
  if (!t || t.dataType !== DataType.FLOAT || (t.dims ?? []).reduce((a, b) => a * Number(b), 1) !== 1) return undefined;
  if (t.rawData && t.rawData.length === 4) return new DataView(t.rawData.buffer, t.rawData.byteOffset, 4).getFloat32(0, true);
  return t.floatData?.[0];
}

/** A float initializer's values (raw_data or float_data), or undefined for another type. */
function floatValues(t: Tensor | undefined): Float32Array | undefined {
  if (!t || t.dataType !== DataType.FLOAT) return undefined;
  if (t.rawData?.length) return new Float32Array(t.rawData.buffer.slice(t.rawData.byteOffset, t.rawData.byteOffset + t.rawData.byteLength));
  return Float32Array.from(t.floatData ?? []);
}

/**
 * Clip's HardSigmoid is followed by a Mul by the clip's range (6 for Relu6). Where only Convs read that product, as
 * their data input, and their weights are initializers of their own, the range goes into those weights instead
 * (Conv(x * r, W) = Conv(x, W * r)) and the Mul goes: ONNX Runtime then fuses Conv and HardSigmoid, as it fuses
 * Conv and Clip. Other Muls (before a Pad, a pool, the features) stay.
 */
function foldScalesIntoConvs(nodes: Node[], initializers: Map<string, Tensor>, added: Tensor[], feature: string): Node[] {
  const readers = new Map<string, Node[]>();
  for (const n of nodes) for (const input of n.input ?? []) readers.set(input, [...(readers.get(input) ?? []), n]);
  const constants = new Map([...initializers, ...added.map((t) => [t.name!, t] as const)]);
  const dropped = new Set<Node>();
  for (const mul of nodes) {
    const [scaled, range] = mul.input ?? [];
    const out = mul.output![0]!;
    if (mul.opType !== 'Mul' || !scaled?.endsWith('/hard_sigmoid') || range !== `${out}/range` || out === feature) continue;
    const factor = floatValues(constants.get(range))?.[0];
    const convs = readers.get(out) ?? [];
    const foldable = (c: Node) =>
      c.opType === 'Conv' &&
      c.input?.[0] === out &&
      !c.input.slice(1).includes(out) &&
      floatValues(constants.get(c.input[1] ?? '')) !== undefined &&
      readers.get(c.input[1]!)?.length === 1;
    if (factor === undefined || convs.length === 0 || !convs.every(foldable)) continue;
    for (const conv of convs) {
      const weight = constants.get(conv.input![1]!)!;
      const values = floatValues(weight)!.map((v) => v * factor);
      const name = `${weight.name}/times_${out}`;
      added.push(floats(name, (weight.dims ?? []).map(Number), values));
      conv.input = [scaled, name, ...conv.input!.slice(2)];
    }
    dropped.add(mul);
  }
  return nodes.filter((n) => !dropped.has(n));
}

/** The nodes `value` depends on, in graph order. */
function cut(nodes: Node[], value: string, source: string): Node[] {
  const needed = new Set([value]);
  const kept: Node[] = [];
  for (let i = nodes.length - 1; i >= 0; i--) {
    const n = nodes[i]!;
    if (!(n.output ?? []).some((o) => needed.has(o))) continue;
    kept.push(n);
    for (const input of n.input ?? []) if (input) needed.add(input);
  }
  if (!kept.some((n) => n.output?.includes(value))) throw new InputError(`${source}: no node produces the feature value '${value}'`);
  return kept.reverse();
}

/**
 * Compose the whole model. Throws InputError when the backbone graph has no such feature value or a Clip whose
 * bounds are not constants.
 */
export function composeWholeModel(spec: WholeModelSpec): Uint8Array {
  const { source, inputSize: size } = spec;
  const model = decodeOnnx(spec.backbone, source);
  const graph = model.graph!;
  const { name: imageInput, dims: inputDims } = graphInput(model);
  // A batch size fixed by the backbone's export stays fixed (its graph may depend on it); else the axis is dynamic.
  const batch: number | string = inputDims[0] ?? 'batch';
  // Constant nodes holding a tensor become initializers, so that the passes below read their values.
  const initializers = new Map((graph.initializer ?? []).map((t) => [t.name!, t]));
  const constants = new Set<Node>();
  for (const n of graph.node ?? []) {
    const value = n.attribute?.find((a) => a.name === 'value')?.t;
    if (n.opType !== 'Constant' || !value) continue;
    initializers.set(n.output![0]!, { ...value, name: n.output![0]! });
    constants.add(n);
  }
  let nodes = cut(graph.node ?? [], spec.featureValue, source).filter((n) => !constants.has(n));

  // Identity nodes go: their readers read the Identity's input.
  const alias = new Map<string, string>();
  const resolve = (name: string): string => (alias.has(name) ? resolve(alias.get(name)!) : name);
  for (const n of nodes) if (n.opType === 'Identity') alias.set(n.output![0]!, n.input![0]!);
  nodes = nodes.filter((n) => n.opType !== 'Identity');

  // Preprocessing, on NCHW: Cast, Transpose, channel order, then value * a[c] + b[c] (preprocessPixels' a and b).
  const pre: Node[] = [];
  const added: Tensor[] = [];
  const name = (what: string) => `${PREFIX}/${what}`;
  pre.push(node('Cast', [WHOLE_MODEL_INPUT], name('pixels_float'), [intAttr('to', DataType.FLOAT)]));
  pre.push(node('Transpose', [name('pixels_float')], name('pixels_nchw'), [intsAttr('perm', [0, 3, 1, 2])]));
  let x = name('pixels_nchw');
  const p = spec.preprocess;
  if (p.channel_order === 'BGR') {
    added.push({ name: name('bgr_order'), dims: [3], dataType: DataType.INT64, rawData: new Uint8Array(BigInt64Array.of(2n, 1n, 0n).buffer) });
    pre.push(node('Gather', [x, name('bgr_order')], name('pixels_bgr'), [intAttr('axis', 1)]));
    x = name('pixels_bgr');
  }
  const a = [0, 1, 2].map((c) => p.scale / p.std[c]!);
  const b = [0, 1, 2].map((c) => -p.mean[c]! / p.std[c]!);
  if (a.some((v) => v !== 1) || b.some((v) => v !== 0)) {
    // One BatchNormalization (mean 0, variance 1, epsilon 0): value * a[c] + b[c]. OpenCV 4.6 reads it at any batch
    // size, where a per-channel Add of a constant breaks its shape inference for batches above 1.
    added.push(
      floats(name('scale'), [3], a),
      floats(name('offset'), [3], b),
      floats(name('zero'), [3], [0, 0, 0]),
      floats(name('one'), [3], [1, 1, 1]),
    );
    pre.push(
      node('BatchNormalization', [x, name('scale'), name('offset'), name('zero'), name('one')], name('normalised'), [floatAttr('epsilon', 0)]),
    );
    x = name('normalised');
  }
  if (spec.layout === 'NHWC') {
    // A converted TF.js graph starts by transposing its NHWC input to NCHW: its readers take the NCHW value instead.
    const readers = nodes.filter((n) => n.input?.includes(imageInput));
    const first = readers[0];
    const perm = first?.attribute?.find((at) => at.name === 'perm')?.ints?.map(Number);
    if (readers.length === 1 && first!.opType === 'Transpose' && perm?.join() === '0,3,1,2') {
      alias.set(first!.output![0]!, x);
      nodes = nodes.filter((n) => n !== first);
    } else {
      pre.push(node('Transpose', [x], name('normalised_nhwc'), [intsAttr('perm', [0, 2, 3, 1])]));
      x = name('normalised_nhwc');
    }
  }
  alias.set(imageInput, x);

  // Clip(x, min, max) with constant bounds as (max - min) * HardSigmoid(x; 1/(max - min), -min/(max - min)) + min.
  const body: Node[] = [];
  for (const n of nodes) {
    const inputs = (n.input ?? []).map((i) => (i ? resolve(i) : i));
    if (n.opType !== 'Clip' || inputs.length < 2) {
      body.push({ ...n, input: inputs });
      continue;
    }
    const min = inputs[1] ? constantScalar(initializers, inputs[1]) : -Infinity;
    const max = inputs[2] ? constantScalar(initializers, inputs[2]) : Infinity;
    if (min === undefined || max === undefined || !Number.isFinite(min) || !Number.isFinite(max)) {
      throw new InputError(
        `${source}: node ${n.name ?? n.output![0]} is a Clip without constant finite bounds, which the exported model cannot express in portable ops`,
      );
    }
    const out = n.output![0]!;
    const range = max - min;
    body.push(node('HardSigmoid', [inputs[0]!], `${out}/hard_sigmoid`, [floatAttr('alpha', 1 / range), floatAttr('beta', -min / range)]));
    added.push(floats(`${out}/range`, [], [range]));
    if (min === 0) {
      body.push(node('Mul', [`${out}/hard_sigmoid`, `${out}/range`], out));
    } else {
      body.push(node('Mul', [`${out}/hard_sigmoid`, `${out}/range`], `${out}/scaled`));
      added.push(floats(`${out}/min`, [], [min]));
      body.push(node('Add', [`${out}/scaled`, `${out}/min`], out));
    }
  }
  const folded = foldScalesIntoConvs(body, initializers, added, resolve(spec.featureValue));

  // The head: Flatten (unless the features already are), Gemm per dense layer, Relu, and Softmax last.
  const head: Node[] = [];
  let h = resolve(spec.featureValue);
  const producer = folded.find((n) => n.output?.includes(h));
  if (producer?.opType !== 'Flatten') {
    head.push(node('Flatten', [h], name('features'), [intAttr('axis', 1)]));
    h = name('features');
  }
  const last = spec.head.length - 1;
  if (last < 0 || spec.head[last]!.activation !== 'softmax') throw new InputError(`${source}: the head does not end in a softmax layer`);
  spec.head.forEach((layer, i) => {
    const w = new Float32Array(layer.inputs * layer.units);
    for (let r = 0; r < layer.inputs; r++) for (let c = 0; c < layer.units; c++) w[c * layer.inputs + r] = layer.kernel[r * layer.units + c]!;
    added.push(floats(name(`dense_${i}/weight`), [layer.units, layer.inputs], w));
    added.push(floats(name(`dense_${i}/bias`), [layer.units], layer.bias ?? new Float32Array(layer.units)));
    const z = name(`dense_${i}`);
    head.push(node('Gemm', [h, name(`dense_${i}/weight`), name(`dense_${i}/bias`)], z, [intAttr('transB', 1)]));
    h = z;
    if (layer.activation === 'relu') {
      head.push(node('Relu', [h], `${z}/relu`));
      h = `${z}/relu`;
    } else if (layer.activation === 'softmax') {
      if (i !== last) throw new InputError(`${source}: the head has a softmax before its last layer`);
      head.push(node('Softmax', [h], WHOLE_MODEL_OUTPUT, [intAttr('axis', 1)]));
    }
  });

  const allNodes = [...pre, ...folded, ...head];
  const used = new Set(allNodes.flatMap((n) => n.input ?? []));
  const keptInitializers = [...initializers.values(), ...added].filter((t) => used.has(t.name!));
  const kept = new Set(keptInitializers.map((t) => t.name));
  const tensorType = (elemType: number, dims: (number | string)[]) => ({
    tensorType: { elemType, shape: { dim: dims.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })) } },
  });
  graph.node = allNodes;
  graph.initializer = keptInitializers;
  graph.input = [
    { name: WHOLE_MODEL_INPUT, type: tensorType(DataType.UINT8, [batch, size, size, 3]), docString: 'RGB pixels, uint8, NHWC' },
    ...(graph.input ?? []).filter((i) => i.name !== imageInput && kept.has(i.name)),
  ];
  graph.output = [
    { name: WHOLE_MODEL_OUTPUT, type: tensorType(DataType.FLOAT, [batch, spec.labels.length]), docString: `softmax over ${spec.labels.join(', ')}` },
  ];
  graph.valueInfo = [];
  graph.name = 'imgpipe_classifier';
  if (!(model.opsetImport ?? []).some((o) => !o.domain)) model.opsetImport = [...(model.opsetImport ?? []), { domain: '', version: 13 }];
  model.producerName = 'imgpipe';
  model.metadataProps = [
    ...(model.metadataProps ?? []).filter((m) => !m.key?.startsWith('imgpipe.') && !['labels', 'preprocess', 'input'].includes(m.key ?? '')),
    { key: 'labels', value: JSON.stringify(spec.labels) },
    { key: 'preprocess', value: JSON.stringify({ ...p, applied: 'in the graph: (pixel * scale - mean[c]) / std[c], channels in channel_order' }) },
    { key: 'input', value: `${WHOLE_MODEL_INPUT}: uint8 [${batch}, ${size}, ${size}, 3], RGB, NHWC (height, width, channel), values 0-255` },
    { key: 'output', value: `${WHOLE_MODEL_OUTPUT}: float32 [${batch}, ${spec.labels.length}], softmax in the order of labels` },
  ];
  return onnx.ModelProto.encode(model).finish();
}
