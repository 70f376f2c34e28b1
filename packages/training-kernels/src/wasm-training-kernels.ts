import type { KernelConfig, KernelFunc, Tensor, TensorInfo } from '@tensorflow/tfjs-core';
import type { Tf } from '@imgpipe/engines';
import type { WasmBackend } from './wasm-kernel-types.js';
import { simdLoops } from './wasm-simd-loops.js';

/**
 * Two training-only ops for TF.js WebAssembly, each one kernel forward and one backward, as loops over the heap:
 *
 * - BatchNormalization with batch statistics (training mode, channels last): y = (x - mean) / sqrt(var + eps) *
 *   gamma + beta with mean and (biased) variance over every axis but the last, as tfjs-layers computes them. Its
 *   layer builds this from moments and batchNorm, about thirty kernels forward and backward, several of them
 *   allocating a full-size tensor of ones (Mean's gradient); on MobileNet v1 0.75 they took 45% of a step.
 * - ReLU6, whose layers run relu and minimum (or clipByValue) forward and five kernels backward; forward it is
 *   wasm's own Relu6 kernel.
 *
 * The loops are SIMD WebAssembly (wasm-simd-loops.ts). `trainingBatchNorm` and `relu6` run the ops;
 * training-layers.ts points a model's layers at them.
 */
const BATCH_NORM_TRAINING = 'ImgpipeBatchNormTraining';
const BATCH_NORM_TRAINING_GRAD = 'ImgpipeBatchNormTrainingGrad';
const RELU6 = 'ImgpipeRelu6';
const RELU6_GRAD = 'ImgpipeRelu6Grad';

type Args = Parameters<KernelFunc>[0];
type Attrs = { epsilon: number };

const sizeOf = (shape: number[]) => shape.reduce((a, b) => a * b, 1);

export function registerWasmTrainingKernels(tf: Tf): void {
  if (tf.getKernel(BATCH_NORM_TRAINING, 'wasm')) return;
  const register = (kernelName: string, kernelFunc: (args: Args) => TensorInfo | TensorInfo[]) =>
    tf.registerKernel({ kernelName, backendName: 'wasm', kernelFunc } as KernelConfig);
  register(BATCH_NORM_TRAINING, batchNormTrainingKernel);
  register(BATCH_NORM_TRAINING_GRAD, batchNormTrainingGradKernel);
  const wasmRelu6 = tf.getKernel('Relu6', 'wasm')!.kernelFunc;
  register(RELU6, (args) => wasmRelu6(args) as TensorInfo);
  register(RELU6_GRAD, relu6GradKernel);

  const run = (name: string, inputs: Record<string, Tensor>, attrs: Record<string, unknown> = {}) =>
    tf.engine().runKernel(name, inputs as never, attrs as never) as Tensor | Tensor[];
  tf.registerGradient({
    kernelName: BATCH_NORM_TRAINING,
    inputsToSave: ['x', 'gamma'],
    outputsToSave: [false, true, true],
    // Mean and variance feed only the moving averages, never a loss: their gradients are not asked for.
    gradFunc: (dy, saved, attrs) => {
      const [x, gamma, mean, variance] = saved as [Tensor, Tensor, Tensor, Tensor];
      const dOut = Array.isArray(dy) ? dy[0]! : dy;
      const [dx, dGamma, dBeta] = run(BATCH_NORM_TRAINING_GRAD, { dy: dOut, x, gamma, mean, variance }, attrs) as Tensor[];
      return { x: () => dx!, gamma: () => dGamma!, beta: () => dBeta! };
    },
  });
  tf.registerGradient({
    kernelName: RELU6,
    outputsToSave: [true],
    gradFunc: (dy, saved) => ({ x: () => run(RELU6_GRAD, { dy: dy as Tensor, y: saved[0]! }) as Tensor }),
  });
}

/** [normalized x, batch mean, batch variance] of x [..., C], per channel. */
export function trainingBatchNorm(tf: Tf, x: Tensor, gamma: Tensor, beta: Tensor, epsilon: number): [Tensor, Tensor, Tensor] {
  return tf.engine().runKernel(BATCH_NORM_TRAINING, { x, gamma, beta } as never, { epsilon } as never) as unknown as [Tensor, Tensor, Tensor];
}

/** min(max(x, 0), 6); the gradient passes where 0 < x < 6. */
export function relu6(tf: Tf, x: Tensor): Tensor {
  return tf.engine().runKernel(RELU6, { x } as never, {} as never) as Tensor;
}

function floatInputs(args: Args, names: string[]): TensorInfo[] {
  const inputs = args.inputs as Record<string, TensorInfo>;
  return names.map((name) => {
    const t = inputs[name]!;
    if (t.dtype !== 'float32') throw new Error(`${name} must be float32, got ${t.dtype}`);
    return t;
  });
}

function perChannel(backend: WasmBackend, t: TensorInfo, channels: number, name: string): Float64Array {
  if (sizeOf(t.shape) !== channels) throw new Error(`${name} has shape [${t.shape}], expected ${channels} values`);
  return Float64Array.from(backend.typedArrayFromHeap(t));
}

/**
 * What both batch-norm kernels start from: x [rows, channels] (x's last axis), epsilon, the per-channel inputs
 * `perChannelNames` read as float64, and three outputs: one shaped like x, two per channel.
 */
function batchNormFrame<const Names extends readonly string[]>(args: Args, x: TensorInfo, perChannelNames: Names) {
  const backend = args.backend as unknown as WasmBackend;
  const channels = x.shape.at(-1)!;
  const inputs = floatInputs(args, [...perChannelNames]);
  return {
    backend,
    loops: simdLoops(backend),
    epsilon: (args.attrs as unknown as Attrs).epsilon,
    channels,
    rows: sizeOf(x.shape) / channels,
    perChannel: inputs.map((t, i) => perChannel(backend, t, channels, perChannelNames[i]!)) as { [K in keyof Names]: Float64Array },
    outputs: [backend.makeOutput(x.shape, 'float32'), backend.makeOutput([channels], 'float32'), backend.makeOutput([channels], 'float32')] as const,
  };
}

function batchNormTrainingKernel(args: Args): TensorInfo[] {
  const [x] = floatInputs(args, ['x']) as [TensorInfo];
  const {
    backend,
    loops,
    epsilon,
    channels,
    rows,
    perChannel: [gamma, beta],
    outputs,
  } = batchNormFrame(args, x, ['gamma', 'beta']);
  const [out, meanOut, varianceOut] = outputs;
  const [sum, sumSquares] = loops.sums(x, x, rows, channels);
  const mean = backend.typedArrayFromHeap(meanOut);
  const variance = backend.typedArrayFromHeap(varianceOut);
  const scale = new Float32Array(channels);
  const shift = new Float32Array(channels);
  for (let c = 0; c < channels; c++) {
    const m = sum[c]! / rows;
    const v = Math.max(0, sumSquares[c]! / rows - m * m);
    mean[c] = m;
    variance[c] = v;
    const s = gamma[c]! / Math.sqrt(v + epsilon);
    scale[c] = s;
    shift[c] = beta[c]! - m * s;
  }
  loops.affine(x, x, out, rows, channels, scale, new Float32Array(channels), shift);
  return [out, meanOut, varianceOut];
}

/**
 * With xhat = (x - mean) * r, r = 1 / sqrt(var + eps), and N values per channel:
 * dbeta = sum(dy), dgamma = sum(dy * xhat), dx = gamma * r * (dy - dbeta / N - xhat * dgamma / N),
 * which is p * dy + q * x + k per channel: one pass for the sums, one for dx.
 */
function batchNormTrainingGradKernel(args: Args): TensorInfo[] {
  const [dy, x] = floatInputs(args, ['dy', 'x']) as [TensorInfo, TensorInfo];
  const {
    backend,
    loops,
    epsilon,
    channels,
    rows,
    perChannel: [gamma, mean, variance],
    outputs,
  } = batchNormFrame(args, x, ['gamma', 'mean', 'variance']);
  const [dxOut, dGammaOut, dBetaOut] = outputs;
  const [sumDy, sumDyX] = loops.sums(dy, x, rows, channels);
  const dGamma = backend.typedArrayFromHeap(dGammaOut);
  const dBeta = backend.typedArrayFromHeap(dBetaOut);
  const p = new Float32Array(channels);
  const q = new Float32Array(channels);
  const k = new Float32Array(channels);
  for (let c = 0; c < channels; c++) {
    const r = 1 / Math.sqrt(variance[c]! + epsilon);
    const dg = r * (sumDyX[c]! - mean[c]! * sumDy[c]!);
    dGamma[c] = dg;
    dBeta[c] = sumDy[c]!;
    const a = gamma[c]! * r;
    const b = (-a * r * dg) / rows;
    p[c] = a;
    q[c] = b;
    k[c] = (-a * sumDy[c]!) / rows - b * mean[c]!;
  }
  loops.affine(dy, x, dxOut, rows, channels, p, q, k);
  return [dxOut, dGammaOut, dBetaOut];
}

function relu6GradKernel(args: Args): TensorInfo {
  const backend = args.backend as unknown as WasmBackend;
  const [dy, y] = floatInputs(args, ['dy', 'y']) as [TensorInfo, TensorInfo];
  const out = backend.makeOutput(y.shape, 'float32');
  simdLoops(backend).relu6Grad(dy, y, out, sizeOf(y.shape));
  return out;
}
