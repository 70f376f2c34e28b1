import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { writeJsonAtomic } from '@imgpipe/kit';

/**
 * Tiny backbones for tests, the same conv net in both formats with the same weights:
 *   input (size x size x 3) -> conv1 3x3 same, relu -> conv2 3x3 stride 2 valid, relu -> global average pool
 *   ('features') -> dense ('logits', the model's output).
 * TF.js: a layers model (NHWC) written by hand as tfjs-layers saves it (tiny-layers-model.ts; no TF.js). ONNX: a graph (NCHW, like a
 * torch export) written with onnx-proto, whose 'features' value is not a graph output.
 */
export interface TinyConvWeights {
  channels: [number, number];
  classes: number;
  /** HWIO, as TF.js stores conv kernels. */
  conv1: { kernel: Float32Array; bias: Float32Array };
  conv2: { kernel: Float32Array; bias: Float32Array };
  /** [in, out], as TF.js stores dense kernels. */
  dense: { kernel: Float32Array; bias: Float32Array };
}

/**
 * The same net as a TF.js graph model (what tensorflowjs_converter writes for a SavedModel), written by hand:
 * Placeholder -> Conv2D/BiasAdd/Relu x2 -> Mean over H, W ('features') -> MatMul/BiasAdd ('logits').
 */
export async function writeTinyGraphModel(dir: string, inputSize: number, w: TinyConvWeights): Promise<void> {
  const [c1, c2] = w.channels;
  const b64 = (text: string) => Buffer.from(text).toString('base64');
  const shape = (dims: number[]) => ({ dim: dims.map((d) => ({ size: String(d) })) });
  const constNode = (name: string, dtype: 'DT_FLOAT' | 'DT_INT32', dims: number[]) => ({
    name,
    op: 'Const',
    attr: { value: { tensor: { dtype, tensorShape: shape(dims) } }, dtype: { type: dtype } },
  });
  const conv = (name: string, input: string, stride: number, padding: 'SAME' | 'VALID') => ({
    name,
    op: 'Conv2D',
    input: [input, `${name}/kernel`],
    attr: {
      T: { type: 'DT_FLOAT' },
      strides: { list: { i: ['1', String(stride), String(stride), '1'] } },
      padding: { s: b64(padding) },
      data_format: { s: b64('NHWC') },
      dilations: { list: { i: ['1', '1', '1', '1'] } },
    },
  });
  const op = (name: string, type: string, input: string[], attr: Record<string, unknown> = {}) => ({
    name,
    op: type,
    input,
    attr: { T: { type: 'DT_FLOAT' }, ...attr },
  });
  const weights: { name: string; shape: number[]; dtype: 'float32' | 'int32'; data: Float32Array | Int32Array }[] = [
    { name: 'conv1/kernel', shape: [3, 3, 3, c1], dtype: 'float32', data: w.conv1.kernel },
    { name: 'conv1/bias', shape: [c1], dtype: 'float32', data: w.conv1.bias },
    { name: 'conv2/kernel', shape: [3, 3, c1, c2], dtype: 'float32', data: w.conv2.kernel },
    { name: 'conv2/bias', shape: [c2], dtype: 'float32', data: w.conv2.bias },
    { name: 'features/axes', shape: [2], dtype: 'int32', data: Int32Array.from([1, 2]) },
    { name: 'logits/kernel', shape: [c2, w.classes], dtype: 'float32', data: w.dense.kernel },
    { name: 'logits/bias', shape: [w.classes], dtype: 'float32', data: w.dense.bias },
  ];
  const node = [
    { name: 'input', op: 'Placeholder', attr: { dtype: { type: 'DT_FLOAT' }, shape: { shape: shape([-1, inputSize, inputSize, 3]) } } },
    ...weights.map((t) => constNode(t.name, t.dtype === 'int32' ? 'DT_INT32' : 'DT_FLOAT', t.shape)),
    conv('conv1', 'input', 1, 'SAME'),
    op('conv1/BiasAdd', 'BiasAdd', ['conv1', 'conv1/bias'], { data_format: { s: b64('NHWC') } }),
    op('conv1/Relu', 'Relu', ['conv1/BiasAdd']),
    conv('conv2', 'conv1/Relu', 2, 'VALID'),
    op('conv2/BiasAdd', 'BiasAdd', ['conv2', 'conv2/bias'], { data_format: { s: b64('NHWC') } }),
    op('conv2/Relu', 'Relu', ['conv2/BiasAdd']),
    op('features', 'Mean', ['conv2/Relu', 'features/axes'], { Tidx: { type: 'DT_INT32' }, keep_dims: { b: false } }),
    op('logits/MatMul', 'MatMul', ['features', 'logits/kernel'], { transpose_a: { b: false }, transpose_b: { b: false } }),
    op('logits', 'BiasAdd', ['logits/MatMul', 'logits/bias'], { data_format: { s: b64('NHWC') } }),
  ];
  const bytes = Buffer.concat(weights.map((t) => Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength)));
  await writeFile(join(dir, 'weights.bin'), bytes);
  await writeJsonAtomic(join(dir, 'model.json'), {
    format: 'graph-model',
    generatedBy: 'imgpipe-test-utils',
    convertedBy: null,
    modelTopology: { node, library: {}, versions: { producer: 1 } },
    weightsManifest: [{ paths: ['weights.bin'], weights: weights.map(({ name, shape, dtype }) => ({ name, shape, dtype })) }],
  });
}
