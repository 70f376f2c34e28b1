import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createRng } from '@imgpipe/kit';
import { writeTinyGraphModel, type TinyConvWeights } from './tiny-graph-model.js';
import { writeTinyLayersModel } from './tiny-layers-model.js';

export type { TinyConvWeights } from './tiny-graph-model.js';
import onnxProto from 'onnx-proto';

const { onnx } = onnxProto;

export interface TinyBackbone {
  format: 'onnx' | 'tfjs-layers' | 'tfjs-graph';
  /** model.onnx or model.json */
  path: string;
  dir: string;
  inputSize: number;
  weights: TinyConvWeights;
  /** The global-pool output: a layer name (TF.js) or value name (ONNX). */
  featureLayer: string;
  outputName: string;
  featureDim: number;
}

export interface TinyConvOptions {
  dir: string;
  inputSize?: number;
  seed?: number;
  format: 'onnx' | 'tfjs-layers' | 'tfjs-graph';
  channels?: [number, number];
  classes?: number;
  /** ONNX only: fix the batch dimension (as some exports do) instead of a symbolic 'n'. */
  fixedBatch?: number;
}

export function tinyConvWeights(seed = 1, channels: [number, number] = [4, 8], classes = 3): TinyConvWeights {
  const rand = createRng(seed);
  const fill = (n: number, scale: number) => Float32Array.from({ length: n }, () => (rand() * 2 - 1) * scale);
  const [c1, c2] = channels;
  return {
    channels,
    classes,
    conv1: { kernel: fill(3 * 3 * 3 * c1, 0.5), bias: fill(c1, 0.1) },
    conv2: { kernel: fill(3 * 3 * c1 * c2, 0.3), bias: fill(c2, 0.1) },
    dense: { kernel: fill(c2 * classes, 0.5), bias: fill(classes, 0.1) },
  };
}

export async function buildTinyConvBackbone(options: TinyConvOptions): Promise<TinyBackbone> {
  const { dir, inputSize = 16, seed = 1, format } = options;
  const weights = tinyConvWeights(seed, options.channels, options.classes);
  await mkdir(dir, { recursive: true });
  const common = { dir, inputSize, weights, featureDim: weights.channels[1], outputName: 'logits' };
  if (format === 'tfjs-layers') {
    await writeTinyLayersModel(dir, inputSize, weights);
    return { ...common, format, path: join(dir, 'model.json'), featureLayer: 'features' };
  }
  if (format === 'tfjs-graph') {
    await writeTinyGraphModel(dir, inputSize, weights);
    return { ...common, format, path: join(dir, 'model.json'), featureLayer: 'features' };
  }
  const path = join(dir, 'model.onnx');
  await writeFile(path, tinyConvOnnx(inputSize, weights, options.fixedBatch));
  return { ...common, format, path, featureLayer: 'features' };
}

/** HWIO -> OIHW */
export function hwioToOihw(kernel: Float32Array, kh: number, kw: number, cin: number, cout: number): Float32Array {
  const out = new Float32Array(kernel.length);
  for (let h = 0; h < kh; h++)
    for (let x = 0; x < kw; x++)
      for (let i = 0; i < cin; i++)
        for (let o = 0; o < cout; o++) out[((o * cin + i) * kh + h) * kw + x] = kernel[((h * kw + x) * cin + i) * cout + o]!;
  return out;
}

export function transpose2d(m: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(m.length);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = m[r * cols + c]!;
  return out;
}

function floatTensor(name: string, dims: number[], data: Float32Array) {
  return onnx.TensorProto.create({
    name,
    dims,
    dataType: onnx.TensorProto.DataType.FLOAT,
    rawData: new Uint8Array(data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength)),
  });
}

export const ints = (name: string, values: number[]) =>
  onnx.AttributeProto.create({ name, ints: values, type: onnx.AttributeProto.AttributeType.INTS });
export const int = (name: string, value: number) => onnx.AttributeProto.create({ name, i: value, type: onnx.AttributeProto.AttributeType.INT });

export type OnnxNodeSpec = { op: string; inputs: string[]; outputs: string[]; attrs?: ReturnType<typeof ints>[]; name?: string };

/** An ONNX model: one float input [n, ...dims], the given nodes and initializers, float outputs. */
export function onnxModel(options: {
  input: string;
  inputDims: (number | string)[];
  outputs: string[];
  nodes: OnnxNodeSpec[];
  initializers: { name: string; dims: number[]; data: Float32Array }[];
  opset?: number;
  name?: string;
}): Uint8Array {
  const shape = { dim: options.inputDims.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })) };
  const model = onnx.ModelProto.create({
    irVersion: 7,
    producerName: 'imgpipe-test-utils',
    opsetImport: [{ domain: '', version: options.opset ?? 13 }],
    graph: {
      name: options.name ?? 'graph',
      input: [{ name: options.input, type: { tensorType: { elemType: onnx.TensorProto.DataType.FLOAT, shape } } }],
      output: options.outputs.map((name) => ({ name, type: { tensorType: { elemType: onnx.TensorProto.DataType.FLOAT } } })),
      initializer: options.initializers.map((t) => floatTensor(t.name, t.dims, t.data)),
      node: options.nodes.map((n, i) => ({
        name: n.name ?? `${n.op}_${i}`,
        opType: n.op,
        input: n.inputs,
        output: n.outputs,
        attribute: n.attrs ?? [],
      })),
    },
  });
  return onnx.ModelProto.encode(model).finish();
}

export function tinyConvOnnx(inputSize: number, w: TinyConvWeights, fixedBatch?: number): Uint8Array {
  const [c1, c2] = w.channels;
  return onnxModel({
    name: 'tiny_conv',
    input: 'input',
    inputDims: [fixedBatch ?? 'n', 3, inputSize, inputSize],
    outputs: ['logits'],
    initializers: [
      { name: 'conv1.weight', dims: [c1, 3, 3, 3], data: hwioToOihw(w.conv1.kernel, 3, 3, 3, c1) },
      { name: 'conv1.bias', dims: [c1], data: w.conv1.bias },
      { name: 'conv2.weight', dims: [c2, c1, 3, 3], data: hwioToOihw(w.conv2.kernel, 3, 3, c1, c2) },
      { name: 'conv2.bias', dims: [c2], data: w.conv2.bias },
      { name: 'fc.weight', dims: [w.classes, c2], data: transpose2d(w.dense.kernel, c2, w.classes) },
      { name: 'fc.bias', dims: [w.classes], data: w.dense.bias },
    ],
    nodes: [
      {
        op: 'Conv',
        inputs: ['input', 'conv1.weight', 'conv1.bias'],
        outputs: ['conv1'],
        attrs: [ints('kernel_shape', [3, 3]), ints('pads', [1, 1, 1, 1])],
      },
      { op: 'Relu', inputs: ['conv1'], outputs: ['relu1'] },
      {
        op: 'Conv',
        inputs: ['relu1', 'conv2.weight', 'conv2.bias'],
        outputs: ['conv2'],
        attrs: [ints('kernel_shape', [3, 3]), ints('strides', [2, 2])],
      },
      { op: 'Relu', inputs: ['conv2'], outputs: ['relu2'] },
      { op: 'GlobalAveragePool', inputs: ['relu2'], outputs: ['pool'] },
      { op: 'Flatten', inputs: ['pool'], outputs: ['features'], attrs: [int('axis', 1)] },
      { op: 'Gemm', inputs: ['features', 'fc.weight', 'fc.bias'], outputs: ['logits'], attrs: [int('transB', 1)] },
    ],
  });
}

/**
 * The tiny net's features computed directly in plain loops (no engine), from float NHWC input: the independent
 * reference both engines are checked against.
 */
export function tinyConvReference(w: TinyConvWeights, input: Float32Array, count: number, size: number): Float32Array {
  const [c1, c2] = w.channels;
  const out = new Float32Array(count * c2);
  const size2 = Math.floor((size - 3) / 2) + 1;
  const a = new Float64Array(size * size * c1);
  for (let n = 0; n < count; n++) {
    const img = input.subarray(n * size * size * 3, (n + 1) * size * size * 3);
    for (let y = 0; y < size; y++)
      for (let x = 0; x < size; x++)
        for (let o = 0; o < c1; o++) {
          let sum = w.conv1.bias[o]!;
          for (let ky = 0; ky < 3; ky++)
            for (let kx = 0; kx < 3; kx++) {
              const yy = y + ky - 1;
              const xx = x + kx - 1;
              if (yy < 0 || xx < 0 || yy >= size || xx >= size) continue;
              for (let i = 0; i < 3; i++) sum += img[(yy * size + xx) * 3 + i]! * w.conv1.kernel[((ky * 3 + kx) * 3 + i) * c1 + o]!;
            }
          a[(y * size + x) * c1 + o] = Math.max(0, sum);
        }
    for (let o = 0; o < c2; o++) {
      let total = 0;
      for (let y = 0; y < size2; y++)
        for (let x = 0; x < size2; x++) {
          let sum = w.conv2.bias[o]!;
          for (let ky = 0; ky < 3; ky++)
            for (let kx = 0; kx < 3; kx++)
              for (let i = 0; i < c1; i++)
                sum += a[((2 * y + ky) * size + 2 * x + kx) * c1 + i]! * w.conv2.kernel[((ky * 3 + kx) * c1 + i) * c2 + o]!;
          total += Math.max(0, sum);
        }
      out[n * c2 + o] = total / (size2 * size2);
    }
  }
  return out;
}
