import { readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { argmax, createProgress, createRng, deriveSeed, sha256, shuffleInPlace, silentLogger, UsageError, type Dataset, type Logger, type ProgressEvent, type BackboneInfo, type SplitName } from '@imgpipe/kit';
import { fileLoadHandler, fileSaveHandler, fuseTrainingLayers, preprocessPixels, readModelJson, weightPaths, type Tf } from '@imgpipe/engines';
import type { EpochRecord } from './trial.js';
import { outputFloatsPerImage, wasmTrainingBatch } from './fine-tune-memory.js';

// Types through core's Tf: this package does not depend on @tensorflow/tfjs itself.
type LayersModel = Awaited<ReturnType<Tf['loadLayersModel']>>;
type SymbolicTensor = ReturnType<Tf['input']>;
type Tensor = ReturnType<Tf['tensor']>;

/**
 * --fine-tune: after the sweep, train a TF.js layers backbone (all its weights, or only its BatchNormalization
 * layers) together with the best head, end to end on the training pixels, with the same preprocessing as
 * extraction. Every step runs the backbone forward and backward, so this is far slower than the sweep.
 */
export type FineTuneMode = 'all' | 'bn';

export interface FineTuneSettings {
  mode: FineTuneMode;
  epochs: number;
  /** Default: the best trial's lr / 10. */
  lr?: number;
}

/** A fine-tune epoch is recorded like a trial's epoch. */
export type FineTuneEpoch = EpochRecord;

export interface FineTuneOptions {
  tf: Tf;
  dataset: Dataset;
  /** The backbone's model.json (Backbone.files[0]) and what loadBackbone said about it. */
  backboneModelJson: string;
  backboneInfo: BackboneInfo;
  /** The best trial's head (a layers model.json). */
  headModelJson: string;
  mode: FineTuneMode;
  epochs: number;
  lr: number;
  batchSize: number;
  seed: number;
  /** Gets backbone/ (model.json + weights.bin) and head/. */
  outDir: string;
  log?: Logger;
  onProgress?: (event: ProgressEvent) => void;
}

export interface FineTuneResult {
  mode: FineTuneMode;
  epochs: number;
  lr: number;
  batch_size: number;
  /** Number of trained values (backbone + head). */
  trained_parameters: number;
  history: FineTuneEpoch[];
  train_loss: number;
  train_accuracy: number;
  val_loss: number;
  val_accuracy: number;
  seconds: number;
  /** The fine-tuned backbone's files (model.json first) and their sha256 as loadBackbone computes it. */
  backboneFiles: string[];
  backboneSha256: string;
  headModelJson: string;
}

/** Fails fast, before the sweep, when --fine-tune cannot work with this backbone. */
export async function checkFineTunable(info: BackboneInfo, modelJsonPath: string, mode: FineTuneMode): Promise<void> {
  const drop = 'drop --fine-tune to train heads on its frozen, cached features';
  if (info.format === 'onnx') {
    throw new UsageError(
      `--fine-tune needs a TF.js layers backbone, but ${info.name} is ONNX: ONNX Runtime in Node runs models and cannot train them; ${drop}, or pass a TF.js layers model.json with --backbone`,
    );
  }
  if (info.format === 'tfjs-graph') {
    throw new UsageError(`--fine-tune needs a TF.js layers backbone, but ${modelJsonPath} is a TF.js graph model, whose weights TF.js cannot train; ${drop}`);
  }
  if (mode === 'bn') {
    const json = await readModelJson(modelJsonPath);
    if (!JSON.stringify(json.modelTopology).includes('"BatchNormalization"')) {
      throw new UsageError(`--fine-tune bn: backbone ${modelJsonPath} has no BatchNormalization layers; use --fine-tune all, or ${drop}`);
    }
  }
}

/** sha256 of model.json and its weight files in order: the same as loadBackbone's BackboneInfo.sha256. */
async function tfjsFiles(modelJson: string): Promise<{ files: string[]; hash: string }> {
  const files = [modelJson, ...weightPaths(await readModelJson(modelJson)).map((p) => join(dirname(modelJson), p))];
  return { files, hash: sha256(Buffer.concat(await Promise.all(files.map((f) => readFile(f))))) };
}

/** Rows of a split (any order) as one uint8 NHWC buffer. */
async function readRows(dataset: Dataset, split: SplitName, rows: ArrayLike<number>, imageBytes: number): Promise<Uint8Array> {
  const out = new Uint8Array(rows.length * imageBytes);
  await Promise.all(Array.from(rows, async (row, i) => out.set(await dataset.readPixels(split, row, 1), i * imageBytes)));
  return out;
}

/** The gradient kernels that layers of these classes need (core registers all of them for TF.js wasm). */
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
 * A kernel missed by the check above fails the first step; that, too, reruns on cpu with the warning.
 */
export async function fineTune(options: FineTuneOptions): Promise<FineTuneResult> {
  const { tf, log = silentLogger } = options;
  const backend = tf.getBackend();
  const topology = JSON.stringify((await readModelJson(options.backboneModelJson)).modelTopology);
  const classes = Object.keys(GRADIENT_KERNELS).filter((name) => topology.includes(`"class_name":"${name}"`));
  const missing = [...new Set(classes.flatMap((name) => GRADIENT_KERNELS[name]!))].filter((name) => !tf.getKernel(name, backend));
  if (missing.length === 0) {
    try {
      return await fineTuneHere(options);
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
  const { tf, dataset, backboneInfo: info, mode, epochs, lr, log = silentLogger } = options;
  let batchSize = options.batchSize;
  const started = performance.now();
  const size = info.input_size;
  const imageBytes = size * size * 3;
  const classes = dataset.manifest.classes.length;
  const full = await tf.loadLayersModel(fileLoadHandler(tf.io, options.backboneModelJson));
  let head: LayersModel | undefined;
  let model: LayersModel | undefined;
  const optimizer = tf.train.adam(lr);
  const frozen: { trainable: boolean }[] = [];
  try {
    head = await tf.loadLayersModel(fileLoadHandler(tf.io, options.headModelJson));
    // One graph: input -> backbone up to its feature layer -> the head's own layers (not the head as a nested
    // model: TF.js passes `training` only to the layers of the graph being trained, and the head has dropout).
    let t = full.getLayer(info.feature_layer).output as SymbolicTensor;
    if (t.shape.length > 2) t = tf.layers.flatten({ name: 'imgpipe_fine_tune_flatten' }).apply(t) as SymbolicTensor;
    for (const layer of head.layers) if (layer.getClassName() !== 'InputLayer') t = layer.apply(t) as SymbolicTensor;
    model = tf.model({ inputs: full.inputs, outputs: t, name: 'imgpipe_fine_tune' });
    if (mode === 'bn') {
      const headLayers = new Set(head.layers);
      for (const layer of model.layers) {
        if (!headLayers.has(layer) && layer.trainable && layer.getClassName() !== 'BatchNormalization') {
          layer.trainable = false;
          frozen.push(layer);
        }
      }
    }
    const fused = fuseTrainingLayers(tf, model);
    if (fused.batchNorm + fused.relu6 + fused.frozenConv > 0) {
      log.debug(`fine-tuning with fused training layers: ${fused.batchNorm} BatchNormalization, ${fused.relu6} ReLU6, ${fused.frozenConv} frozen Conv2D`);
    }
    if (tf.getBackend() === 'wasm') {
      const floats = outputFloatsPerImage(model.layers);
      const fits = wasmTrainingBatch(batchSize, floats);
      if (fits < batchSize) {
        log.warn(
          `fine-tuning in batches of ${fits} instead of ${batchSize}: a training step of ${batchSize} images needs about ${((batchSize * floats * 24) / 2 ** 30).toFixed(1)} GiB of TF.js wasm's 4 GiB heap`,
        );
        batchSize = fits;
      }
    }
    const trained = model.trainableWeights.reduce((sum: number, w) => sum + w.shape.reduce((a: number, b: number | null) => a * (b ?? 1), 1), 0);
    model.compile({ optimizer, loss: 'categoricalCrossentropy', metrics: ['accuracy'] });

    const labels = await dataset.labels('train');
    const count = labels.length;
    const batches = Math.ceil(count / batchSize);
    const rng = createRng(deriveSeed(options.seed, 'fine-tune'));
    log.info(`fine-tuning ${mode === 'all' ? 'the whole backbone' : 'the backbone\'s BatchNormalization layers'} and the head: ${trained} parameters, ${epochs} epochs, lr ${lr}, batch ${batchSize} (slow: the backbone runs forward and backward on every image)`);
    const history: FineTuneEpoch[] = [];
    for (let epoch = 1; epoch <= epochs; epoch++) {
      const epochStart = performance.now();
      const progress = createProgress({ label: `fine-tune epoch ${epoch}/${epochs}`, total: count, unit: 'images', quiet: log.quiet, onEvent: options.onProgress });
      const order = shuffleInPlace(Int32Array.from({ length: count }, (_, i) => i), rng);
      let lossSum = 0;
      let correct = 0;
      for (let b = 0; b < batches; b++) {
        const rows = order.subarray(b * batchSize, Math.min(count, (b + 1) * batchSize));
        const n = rows.length;
        const pixels = await readRows(dataset, 'train', rows, imageBytes);
        const oneHot = new Float32Array(n * classes);
        rows.forEach((row, i) => {
          oneHot[i * classes + labels[row]!] = 1;
        });
        const x = tf.tensor4d(preprocessPixels(pixels, n, size, info.preprocess, 'NHWC'), [n, size, size, 3]);
        const y = tf.tensor2d(oneHot, [n, classes]);
        try {
          const [loss, accuracy] = (await model.trainOnBatch(x, y)) as number[];
          if (!Number.isFinite(loss)) throw new Error(`fine-tuning loss is ${loss} in epoch ${epoch} (--fine-tune-lr ${lr} too high?)`);
          lossSum += loss! * n;
          correct += accuracy! * n;
        } finally {
          tf.dispose([x, y]);
        }
        progress.update(Math.min(count, (b + 1) * batchSize), `loss ${(lossSum / Math.min(count, (b + 1) * batchSize)).toFixed(4)}`);
      }
      const trainSeconds = (performance.now() - epochStart) / 1000;
      progress.finish();
      const val = await evaluate(tf, model, dataset, 'val', batchSize, size, info, classes);
      const record = { epoch, train_loss: lossSum / count, train_accuracy: correct / count, val_loss: val.loss, val_accuracy: val.accuracy, seconds: (performance.now() - epochStart) / 1000 };
      history.push(record);
      log.info(
        `fine-tune epoch ${epoch}/${epochs}: train_loss ${record.train_loss.toFixed(4)} val_loss ${record.val_loss.toFixed(4)} val_accuracy ${record.val_accuracy.toFixed(4)} (${record.seconds.toFixed(1)}s, ${(count / trainSeconds).toFixed(1)} training images/s)`,
      );
    }
    for (const layer of frozen) layer.trainable = true; // saved as it was loaded
    await full.save(fileSaveHandler(join(options.outDir, 'backbone')));
    await head.save(fileSaveHandler(join(options.outDir, 'head')));
    const saved = await tfjsFiles(join(options.outDir, 'backbone', 'model.json'));
    const last = history.at(-1)!;
    return {
      mode,
      epochs,
      lr,
      batch_size: batchSize,
      trained_parameters: trained,
      history,
      train_loss: last.train_loss,
      train_accuracy: last.train_accuracy,
      val_loss: last.val_loss,
      val_accuracy: last.val_accuracy,
      seconds: (performance.now() - started) / 1000,
      backboneFiles: saved.files,
      backboneSha256: saved.hash,
      headModelJson: join(options.outDir, 'head', 'model.json'),
    };
  } finally {
    // Layers count their users: the fine-tuning graph holds the backbone's layers up to the feature layer and
    // (a second time) the head's layers. Disposing it, then the head, then the backbone's other layers frees each once.
    optimizer.dispose();
    if (model) {
      const inGraph = new Set(model.layers);
      model.dispose();
      head?.dispose();
      for (const layer of full.layers) if (!inGraph.has(layer)) layer.dispose();
    } else {
      head?.dispose();
      full.dispose();
    }
  }
}

/**
 * Loss and accuracy on a split in inference mode: the same computation as loadModel's predict (backbone to the
 * feature layer, then the head), so a model saved from here reproduces these numbers.
 */
async function evaluate(tf: Tf, model: LayersModel, dataset: Dataset, split: SplitName, batchSize: number, size: number, info: BackboneInfo, classes: number) {
  const labels = await dataset.labels(split);
  let lossSum = 0;
  let correct = 0;
  for (let start = 0; start < labels.length; start += batchSize) {
    const n = Math.min(batchSize, labels.length - start);
    const pixels = await dataset.readPixels(split, start, n);
    const probs = tf.tidy(() => model.predict(tf.tensor4d(preprocessPixels(pixels, n, size, info.preprocess, 'NHWC'), [n, size, size, 3])) as Tensor);
    const p = (await probs.data()) as Float32Array;
    probs.dispose();
    for (let i = 0; i < n; i++) {
      const label = labels[start + i]!;
      if (argmax(p, i * classes, classes) === label) correct++;
      lossSum -= Math.log(Math.max(p[i * classes + label]!, 1e-7));
    }
  }
  return { loss: lossSum / labels.length, accuracy: correct / labels.length };
}
