import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import * as tf from './tfjs-parts.js';
import { createRng } from '@imgpipe/kit';
import { fileSaveHandler } from './tfjs-io.js';
import { hwioToOihw, int, ints, onnxModel, transpose2d, type OnnxNodeSpec } from '@imgpipe/test-utils';
import { quietCpuBackend } from './test-quiet-cpu.js';

/**
 * ResNet50 (keras.applications' v1 layout: the stride on the first 1x1 conv of a stage) with random weights, in
 * both formats with the same weights, for benchmarks (nothing is downloaded). BatchNorm is folded into the conv
 * biases, as inference engines do anyway. TF.js: a layers model (NHWC); ONNX: NCHW like a torch export, with
 * 'features' (Flatten after GlobalAveragePool) as a value that is not a graph output.
 */
interface Conv {
  name: string;
  input: string;
  filters: number;
  inChannels: number;
  kernel: number;
  stride: number;
  /** Symmetric zero padding; TF.js uses 'same' for 3x3 stride 1 and an explicit ZeroPadding2D for the stem. */
  pad: number;
  relu: boolean;
}
type Op =
  | ({ op: 'conv' } & Conv)
  | { op: 'maxpool'; name: string; input: string }
  | { op: 'add'; name: string; inputs: [string, string] }
  | { op: 'gap'; name: string; input: string }
  | { op: 'dense'; name: string; input: string; units: number; inChannels: number };

function resnet50Ops(classes = 1000): Op[] {
  const ops: Op[] = [];
  ops.push({ op: 'conv', name: 'conv1', input: 'input', filters: 64, inChannels: 3, kernel: 7, stride: 2, pad: 3, relu: true });
  ops.push({ op: 'maxpool', name: 'pool1', input: 'conv1' });
  let x = 'pool1';
  let channels = 64;
  const stages: [number, number][] = [
    [64, 3],
    [128, 4],
    [256, 6],
    [512, 3],
  ];
  stages.forEach(([filters, blocks], s) => {
    for (let b = 0; b < blocks; b++) {
      const name = `stage${s + 2}_block${b + 1}`;
      const stride = b === 0 && s > 0 ? 2 : 1;
      const out = filters * 4;
      let shortcut = x;
      if (b === 0) {
        ops.push({ op: 'conv', name: `${name}_proj`, input: x, filters: out, inChannels: channels, kernel: 1, stride, pad: 0, relu: false });
        shortcut = `${name}_proj`;
      }
      ops.push({ op: 'conv', name: `${name}_1`, input: x, filters, inChannels: channels, kernel: 1, stride, pad: 0, relu: true });
      ops.push({ op: 'conv', name: `${name}_2`, input: `${name}_1`, filters, inChannels: filters, kernel: 3, stride: 1, pad: 1, relu: true });
      ops.push({ op: 'conv', name: `${name}_3`, input: `${name}_2`, filters: out, inChannels: filters, kernel: 1, stride: 1, pad: 0, relu: false });
      ops.push({ op: 'add', name: `${name}_out`, inputs: [`${name}_3`, shortcut] });
      x = `${name}_out`;
      channels = out;
    }
  });
  ops.push({ op: 'gap', name: 'features', input: x });
  ops.push({ op: 'dense', name: 'logits', input: 'features', units: classes, inChannels: channels });
  return ops;
}

/** He-scaled uniform weights (HWIO kernels, [in, out] dense), deterministic per seed. */
function randomWeights(ops: Op[], seed: number): Map<string, { kernel: Float32Array; bias: Float32Array }> {
  const rand = createRng(seed);
  const weights = new Map<string, { kernel: Float32Array; bias: Float32Array }>();
  for (const op of ops) {
    if (op.op === 'conv' || op.op === 'dense') {
      const fanIn = op.op === 'conv' ? op.kernel * op.kernel * op.inChannels : op.inChannels;
      const n = op.op === 'conv' ? fanIn * op.filters : fanIn * op.units;
      const scale = Math.sqrt(6 / fanIn) * (op.op === 'conv' && !op.relu ? 0.5 : 1);
      const kernel = new Float32Array(n);
      for (let i = 0; i < n; i++) kernel[i] = (rand() * 2 - 1) * scale;
      const bias = new Float32Array(op.op === 'conv' ? op.filters : op.units);
      for (let i = 0; i < bias.length; i++) bias[i] = (rand() * 2 - 1) * 0.01;
      weights.set(op.name, { kernel, bias });
    }
  }
  return weights;
}

interface Resnet50Files {
  onnx: string;
  tfjs: string;
  featureLayer: 'features';
}

/** Write <dir>/onnx/model.onnx and <dir>/tfjs/model.json (+ weights.bin): ResNet50, random weights, same in both. */
export async function buildResnet50Backbones(options: { dir: string; seed?: number; inputSize?: number }): Promise<Resnet50Files> {
  const { dir, seed = 50, inputSize = 224 } = options;
  const ops = resnet50Ops();
  const weights = randomWeights(ops, seed);
  await mkdir(join(dir, 'onnx'), { recursive: true });
  await writeFile(join(dir, 'onnx', 'model.onnx'), resnet50Onnx(ops, weights, inputSize));
  await saveResnet50Tfjs(join(dir, 'tfjs'), ops, weights, inputSize);
  return { onnx: join(dir, 'onnx', 'model.onnx'), tfjs: join(dir, 'tfjs', 'model.json'), featureLayer: 'features' };
}

function resnet50Onnx(ops: Op[], weights: Map<string, { kernel: Float32Array; bias: Float32Array }>, inputSize: number): Uint8Array {
  const nodes: OnnxNodeSpec[] = [];
  const initializers: { name: string; dims: number[]; data: Float32Array }[] = [];
  for (const op of ops) {
    const w = weights.get(op.name);
    switch (op.op) {
      case 'conv': {
        initializers.push({
          name: `${op.name}.weight`,
          dims: [op.filters, op.inChannels, op.kernel, op.kernel],
          data: hwioToOihw(w!.kernel, op.kernel, op.kernel, op.inChannels, op.filters),
        });
        initializers.push({ name: `${op.name}.bias`, dims: [op.filters], data: w!.bias });
        const attrs = [
          ints('kernel_shape', [op.kernel, op.kernel]),
          ints('strides', [op.stride, op.stride]),
          ints('pads', [op.pad, op.pad, op.pad, op.pad]),
        ];
        nodes.push({
          op: 'Conv',
          inputs: [op.input, `${op.name}.weight`, `${op.name}.bias`],
          outputs: [op.relu ? `${op.name}_pre` : op.name],
          attrs,
          name: op.name,
        });
        if (op.relu) nodes.push({ op: 'Relu', inputs: [`${op.name}_pre`], outputs: [op.name] });
        break;
      }
      case 'maxpool':
        nodes.push({
          op: 'MaxPool',
          inputs: [op.input],
          outputs: [op.name],
          attrs: [ints('kernel_shape', [3, 3]), ints('strides', [2, 2]), ints('pads', [1, 1, 1, 1])],
        });
        break;
      case 'add':
        nodes.push({ op: 'Add', inputs: op.inputs, outputs: [`${op.name}_sum`] });
        nodes.push({ op: 'Relu', inputs: [`${op.name}_sum`], outputs: [op.name] });
        break;
      case 'gap':
        nodes.push({ op: 'GlobalAveragePool', inputs: [op.input], outputs: ['pool'] });
        nodes.push({ op: 'Flatten', inputs: ['pool'], outputs: [op.name], attrs: [int('axis', 1)] });
        break;
      case 'dense':
        initializers.push({ name: 'fc.weight', dims: [op.units, op.inChannels], data: transpose2d(w!.kernel, op.inChannels, op.units) });
        initializers.push({ name: 'fc.bias', dims: [op.units], data: w!.bias });
        nodes.push({ op: 'Gemm', inputs: [op.input, 'fc.weight', 'fc.bias'], outputs: [op.name], attrs: [int('transB', 1)] });
        break;
    }
  }
  return onnxModel({ name: 'resnet50_random', input: 'input', inputDims: ['n', 3, inputSize, inputSize], outputs: ['logits'], nodes, initializers });
}

async function saveResnet50Tfjs(
  dir: string,
  ops: Op[],
  weights: Map<string, { kernel: Float32Array; bias: Float32Array }>,
  inputSize: number,
): Promise<void> {
  quietCpuBackend();
  const values = new Map<string, tf.SymbolicTensor>();
  const input = tf.input({ shape: [inputSize, inputSize, 3], name: 'input' });
  values.set('input', input);
  const assign: [tf.layers.Layer, string][] = [];
  for (const op of ops) {
    switch (op.op) {
      case 'conv': {
        let x = values.get(op.input)!;
        let padding: 'same' | 'valid' = 'valid';
        if (op.pad > 0 && op.stride === 1 && op.pad === (op.kernel - 1) / 2) padding = 'same';
        else if (op.pad > 0) x = tf.layers.zeroPadding2d({ padding: op.pad, name: `${op.name}_pad` }).apply(x) as tf.SymbolicTensor;
        const layer = tf.layers.conv2d({
          name: op.name,
          filters: op.filters,
          kernelSize: op.kernel,
          strides: op.stride,
          padding,
          activation: op.relu ? 'relu' : 'linear',
        });
        values.set(op.name, layer.apply(x) as tf.SymbolicTensor);
        assign.push([layer, op.name]);
        break;
      }
      case 'maxpool': {
        const padded = tf.layers.zeroPadding2d({ padding: 1, name: `${op.name}_pad` }).apply(values.get(op.input)!) as tf.SymbolicTensor;
        values.set(op.name, tf.layers.maxPooling2d({ poolSize: 3, strides: 2, name: op.name }).apply(padded) as tf.SymbolicTensor);
        break;
      }
      case 'add': {
        const sum = tf.layers.add({ name: `${op.name}_sum` }).apply(op.inputs.map((i) => values.get(i)!)) as tf.SymbolicTensor;
        values.set(op.name, tf.layers.activation({ activation: 'relu', name: op.name }).apply(sum) as tf.SymbolicTensor);
        break;
      }
      case 'gap':
        values.set(op.name, tf.layers.globalAveragePooling2d({ name: op.name }).apply(values.get(op.input)!) as tf.SymbolicTensor);
        break;
      case 'dense': {
        const layer = tf.layers.dense({ name: op.name, units: op.units });
        values.set(op.name, layer.apply(values.get(op.input)!) as tf.SymbolicTensor);
        assign.push([layer, op.name]);
        break;
      }
    }
  }
  const model = tf.model({ inputs: input, outputs: values.get('logits')!, name: 'resnet50_random' });
  for (const [layer, name] of assign) {
    const w = weights.get(name)!;
    const shape = layer.getWeights()[0]!.shape;
    const tensors = [tf.tensor(w.kernel, shape), tf.tensor1d(w.bias)];
    layer.setWeights(tensors);
    tf.dispose(tensors);
  }
  await model.save(fileSaveHandler(dir));
  model.dispose();
}
