import { silentLogger, UsageError, type BackboneInfo } from '@imgpipe/kit';
import { cpuThreads, readModelJson, type Tf } from '@imgpipe/engines';
import { registerTrainingKernels } from '@imgpipe/training-kernels';
import { evaluateSplit } from './fine-tune-data.js';
import { microBatchStep, trainEpochs } from './fine-tune-loop.js';
import { fineTuneResult, logStart } from './fine-tune-record.js';
import { outputFloatsPerImage, wasmMicroBatch } from './fine-tune-memory.js';
import { type GradientKeeper, keepGradientsAdam } from './fine-tune-optimizer.js';
import {
  buildFineTuneModel,
  disposeFineTuneModel,
  inputTensor,
  predictProbabilities,
  saveFineTuned,
  trainedParameters,
  type FineTuneModel,
} from './fine-tune-model.js';
import { fineTuneInWorkers } from './fine-tune-parallel.js';
import { type FineTuneMode, type FineTuneOptions, type FineTuneResult, unfrozenLayers } from './fine-tune-types.js';

export type { BatchNormStatistics, FineTuneMode, FineTuneResult, FineTuneSettings } from './fine-tune-types.js';

type Tensor = ReturnType<Tf['tensor']>;

/** Fails fast, before the sweep, when --fine-tune cannot work with this backbone. */
export async function checkFineTunable(info: BackboneInfo, modelJsonPath: string, mode: FineTuneMode): Promise<void> {
  const drop = 'drop --fine-tune to train heads on its frozen, cached features';
  if (info.format === 'onnx') {
    throw new UsageError(
      `--fine-tune needs a TF.js layers backbone, but ${info.name} is ONNX: ONNX Runtime in Node runs models and cannot train them; ${drop}, or pass a TF.js layers model.json with --backbone`,
    );
  }
  if (info.format === 'tfjs-graph') {
    throw new UsageError(
      `--fine-tune needs a TF.js layers backbone, but ${modelJsonPath} is a TF.js graph model, whose weights TF.js cannot train; ${drop}`,
    );
  }
  const last = unfrozenLayers(mode);
  if (last !== undefined && !(Number.isInteger(last) && last >= 1))
    throw new UsageError(`expected --fine-tune last:N with N an integer >= 1, got ${mode}`);
  if (mode === 'bn') {
    const json = await readModelJson(modelJsonPath);
    if (!JSON.stringify(json.modelTopology).includes('"BatchNormalization"')) {
      throw new UsageError(`--fine-tune bn: backbone ${modelJsonPath} has no BatchNormalization layers; use --fine-tune all, or ${drop}`);
    }
  }
}

/** The gradient kernels that layers of these classes need (engines registers all of them for TF.js wasm). */
const GRADIENT_KERNELS: Record<string, string[]> = {
  Conv2D: ['Conv2DBackpropFilter', 'Conv2DBackpropInput'],
  DepthwiseConv2D: ['DepthwiseConv2dNativeBackpropFilter', 'DepthwiseConv2dNativeBackpropInput'],
  SeparableConv2D: ['DepthwiseConv2dNativeBackpropFilter', 'DepthwiseConv2dNativeBackpropInput', 'Conv2DBackpropFilter', 'Conv2DBackpropInput'],
  MaxPooling2D: ['MaxPoolGrad'],
  AveragePooling2D: ['AvgPoolGrad'],
};

/** TF.js's error for a kernel the backend lacks (thrown while computing gradients, before any weight changes). */
const MISSING_KERNEL = /Kernel '(\w+)' not registered for backend '(\w+)'/;

/**
 * Fine-tune on the active backend when it has every gradient kernel the backbone's layers need; else, with a
 * warning, on TF.js's plain JavaScript cpu backend, which has them all (tens of times slower), and back afterwards.
 * A kernel missed by the check above fails the first step; that, too, reruns on cpu with the warning. On wasm the
 * steps run split across worker threads (fine-tune-parallel.ts) unless options.workers is 1. On wasm it first
 * registers the training kernels (gradients wasm lacks, faster kernels for training shapes): only fine-tuning does.
 */
export async function fineTune(options: FineTuneOptions): Promise<FineTuneResult> {
  const { tf, log = silentLogger } = options;
  registerTrainingKernels(tf);
  const backend = tf.getBackend();
  const topology = JSON.stringify((await readModelJson(options.backboneModelJson)).modelTopology);
  const classes = Object.keys(GRADIENT_KERNELS).filter((name) => topology.includes(`"class_name":"${name}"`));
  const missing = [...new Set(classes.flatMap((name) => GRADIENT_KERNELS[name]!))].filter((name) => !tf.getKernel(name, backend));
  if (missing.length === 0) {
    const workers = backend === 'wasm' ? Math.min(options.workers ?? cpuThreads(), options.batchSize) : 1;
    try {
      return workers > 1 ? await fineTuneInWorkers(options, workers) : await fineTuneHere(options);
    } catch (error) {
      const kernel = backend === 'cpu' ? undefined : MISSING_KERNEL.exec(error instanceof Error ? error.message : '');
      if (!kernel) throw error;
      discardFailedTape(tf);
      missing.push(kernel[1]!);
    }
  }
  log.warn(
    `fine-tuning on TF.js's JavaScript cpu backend, tens of times slower: TF.js ${backend} has no ${missing.join(', ')} kernel${missing.length > 1 ? 's' : ''} (--device webgpu or cuda train on the GPU)`,
  );
  const prod = tf.env().getBool('PROD');
  tf.env().set('PROD', true); // no "install tfjs-node" banner from the cpu backend: the line above says what runs
  try {
    if (!(await tf.setBackend('cpu'))) throw new Error('the TF.js cpu backend failed to initialise');
    return await fineTuneHere(options);
  } finally {
    await tf.setBackend(backend);
    tf.env().set('PROD', prod);
  }
}

/**
 * A gradient computation that throws leaves TF.js's tape holding the forward pass's saved tensors (its cleanup runs
 * only on success): dispose them, as the successful path would have.
 */
function discardFailedTape(tf: Tf): void {
  const state = (tf.engine() as unknown as { state?: { gradientDepth: number; activeTape: { saved?: Tensor[] }[] | null } }).state;
  if (!state?.activeTape || state.gradientDepth !== 0) return;
  for (const node of state.activeTape) for (const tensor of node.saved ?? []) tensor.dispose();
  state.activeTape = null;
}

async function fineTuneHere(options: FineTuneOptions): Promise<FineTuneResult> {
  const { tf, dataset, backboneInfo: info, mode, epochs, lr, bnStatistics = 'frozen', log = silentLogger } = options;
  const started = performance.now();
  const size = info.input_size;
  const classes = dataset.manifest.classes.length;
  let parts: FineTuneModel | undefined;
  let keeper: GradientKeeper | undefined;
  try {
    parts = await buildFineTuneModel(tf, options.backboneModelJson, options.headModelJson, info.feature_layer, mode, bnStatistics, log);
    const built = parts;
    const { model } = built;
    const fits =
      tf.getBackend() === 'wasm' ? wasmMicroBatch(options.batchSize, 1, outputFloatsPerImage(model.layers), bnStatistics, log) : options.batchSize;
    const microBatch = Math.min(fits, options.microBatch ?? fits);
    const trained = trainedParameters(model);
    const adam = keepGradientsAdam(tf, model, lr);
    keeper = adam;
    model.compile({ optimizer: adam.optimizer, loss: 'categoricalCrossentropy', metrics: ['accuracy'] });
    logStart(log, { mode, bnStatistics, trained, epochs, lr, batchSize: options.batchSize, workers: 1 });
    const imageBytes = size * size * 3;
    const run = await trainEpochs(options, {
      step: (pixels, targets, count, rate) =>
        microBatchStep(
          count,
          microBatch,
          async (from, n) => {
            const x = inputTensor(tf, pixels.subarray(from * imageBytes, (from + n) * imageBytes), n, size, info.preprocess);
            const y = tf.tensor2d(targets.subarray(from * classes, (from + n) * classes), [n, classes]);
            let sums: { lossSum: number; correct: number };
            try {
              const [l, a] = (await model.trainOnBatch(x, y)) as number[];
              sums = { lossSum: l! * n, correct: a! * n };
            } finally {
              tf.dispose([x, y]);
            }
            return { ...sums, gradients: adam.take() };
          },
          (gradients) => adam.apply(gradients, rate),
        ),
      validate: () =>
        evaluateSplit(dataset, 'val', microBatch, classes, (pixels, n) => predictProbabilities(tf, model, pixels, n, size, info.preprocess)),
      save: () => saveFineTuned(built, options.outDir),
    });
    return await fineTuneResult(options.outDir, {
      mode,
      bnStatistics,
      epochs,
      lr,
      batchSize: options.batchSize,
      microBatch,
      workers: 1,
      trained,
      run,
      started,
    });
  } finally {
    keeper?.optimizer.dispose();
    if (parts) disposeFineTuneModel(parts);
  }
}
