import { copyFile, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { basename, join, resolve } from 'node:path';
import type { LayersModel } from '@tensorflow/tfjs-layers';
import {
  InputError,
  listModelFiles,
  openModelDir,
  safeJoin,
  replaceDirectory,
  silentLogger,
  tempPathFor,
  trackTemp,
  untrackTemp,
  writeJsonAtomic,
  type Logger,
  type ModelCard,
  type WholeModelInfo,
} from '@imgpipe/kit';
import type { LoadedModel, LoadModelOptions } from './model-types.js';

export type { LoadedModel } from './model-types.js';

interface SaveModelDirOptions {
  card: ModelCard;
  /** The backbone's files (Backbone.files): copied flat into backbone/. */
  backboneFiles: string[];
  /** The head, saved as head/model.json + head/weights.bin. */
  head: LayersModel;
  /** Write model.onnx, the whole classifier in one file (default true; false writes a directory as older versions did). */
  wholeModel?: boolean;
  /** Where a backbone without an ONNX form is reported (model.onnx then not written). */
  log?: Logger;
}

/**
 * Write a model directory atomically: everything is built in a sibling temp directory, then renamed over `dir`.
 * card.backbone.path is set from the first backbone file; card.head.path is 'head/model.json'; card.files lists
 * every file with its size and sha256. An ONNX backbone is saved with its feature layer already a graph output,
 * so loaders run it as it is. model.onnx (card.onnx) is the backbone and head composed (model-export.ts).
 */
export async function saveModelDir(dir: string, options: SaveModelDirOptions): Promise<ModelCard> {
  const { fileSaveHandler } = await import('./tfjs-io.js');
  const finalDir = resolve(dir);
  const temp = tempPathFor(finalDir);
  trackTemp(temp); // removed if a signal stops the process while the model is written
  try {
    await mkdir(join(temp, 'backbone'), { recursive: true });
    if (options.backboneFiles.length === 0) throw new Error('saveModelDir: no backbone files');
    for (const file of options.backboneFiles) await copyFile(file, join(temp, 'backbone', basename(file)));
    const backbonePath = `backbone/${basename(options.backboneFiles[0]!)}`;
    if (options.card.backbone.format === 'onnx') await exposeFeatureOutput(join(temp, backbonePath), options.card.backbone.feature_layer);
    await options.head.save(fileSaveHandler(join(temp, 'head')));
    const { onnx: _previous, ...given } = options.card;
    const whole = options.wholeModel === false ? undefined : await writeWholeModel(temp, options);
    const card: ModelCard = {
      ...given,
      backbone: { ...options.card.backbone, path: backbonePath },
      head: { ...options.card.head, path: 'head/model.json' },
      ...(whole ? { onnx: whole } : {}),
      files: await listModelFiles(temp),
    };
    await writeJsonAtomic(join(temp, 'card.json'), card);
    await replaceDirectory(temp, finalDir);
    return card;
  } catch (error) {
    await rm(temp, { recursive: true, force: true });
    throw error;
  } finally {
    untrackTemp(temp);
  }
}

/** model.onnx in the directory being written, from the backbone files and the head; undefined where there is none. */
async function writeWholeModel(temp: string, options: SaveModelDirOptions): Promise<WholeModelInfo | undefined> {
  const [{ exportWholeModel }, { WHOLE_MODEL_FILE, WHOLE_MODEL_INPUT, WHOLE_MODEL_OUTPUT }, { decodeOnnx }] = await Promise.all([
    import('./model-export.js'),
    import('./onnx-whole-model.js'),
    import('./onnx-graph.js'),
  ]);
  const bytes = await exportWholeModel(options.card, options.backboneFiles, options.head, options.log ?? silentLogger);
  if (!bytes) return undefined;
  await writeFile(join(temp, WHOLE_MODEL_FILE), bytes);
  const opset = Number(decodeOnnx(bytes, WHOLE_MODEL_FILE).opsetImport?.find((o) => !o.domain)?.version ?? 13);
  return { path: WHOLE_MODEL_FILE, input: WHOLE_MODEL_INPUT, output: WHOLE_MODEL_OUTPUT, opset };
}

/** Rewrite an ONNX file so that `featureLayer` is a graph output (left as it is when it already is one). */
async function exposeFeatureOutput(path: string, featureLayer: string): Promise<void> {
  const { decodeOnnx, exposeOutput } = await import('./onnx-graph.js');
  const bytes = new Uint8Array(await readFile(path));
  const exposed = exposeOutput(decodeOnnx(bytes, path), bytes, featureLayer, path);
  if (exposed !== bytes) await writeFile(path, exposed);
}

/**
 * Load a model directory: model.onnx on ONNX Runtime when the card lists it, else the backbone through the engines and
 * the head with TF.js on the same device.
 */
export async function loadModel(modelDir: string, options: LoadModelOptions): Promise<LoadedModel> {
  const log = options.log ?? silentLogger;
  const dir = resolve(modelDir);
  const card = await openModelDir(dir);
  if (card.onnx && options.wholeModel !== false) {
    const { loadWholeModel } = await import('./whole-model-load.js');
    return loadWholeModel(dir, card, card.onnx, { ...options, log });
  }
  const [{ loadTf }, { loadBackbone }, { fileLoadHandler }] = await Promise.all([
    import('./tfjs-load.js'),
    import('./backbone.js'),
    import('./tfjs-io.js'),
  ]);
  const { tf } = await loadTf(options.device, log);
  const headPath = safeJoin(dir, card.head.path, `${join(dir, 'card.json')}: head.path`);
  let head: LayersModel;
  try {
    head = await tf.loadLayersModel(fileLoadHandler(tf.io, headPath));
  } catch (error) {
    if (error instanceof InputError) throw error;
    throw new InputError(`${headPath}: cannot load the head as a TF.js layers model (${(error as Error).message})`, { cause: error });
  }
  const backbone = await loadBackbone(safeJoin(dir, card.backbone.path, `${join(dir, 'card.json')}: backbone.path`), {
    device: options.device,
    featureLayer: card.backbone.feature_layer,
    preprocess: card.preprocess.name,
    inputSize: card.input.size,
    log,
    ...(options.cacheDir ? { cacheDir: options.cacheDir } : {}),
    ...(options.workers !== undefined ? { workers: options.workers } : {}),
    ...(options.sharedCpu !== undefined ? { sharedCpu: options.sharedCpu } : {}),
    ...(options.offMainThread !== undefined ? { offMainThread: options.offMainThread } : {}),
  }).catch((error: unknown) => {
    head.dispose();
    throw error;
  });
  if (backbone.info.input_size !== card.input.size) {
    head.dispose();
    await backbone.dispose();
    throw new InputError(
      `${join(dir, 'card.json')}: input.size is ${card.input.size} but ${join(dir, card.backbone.path)} takes ${backbone.info.input_size}x${backbone.info.input_size} images`,
    );
  }
  const size = card.input.size;
  const classes = card.labels.length;
  return {
    dir,
    card,
    labels: card.labels,
    inputSize: size,
    concurrency: backbone.concurrency,
    async predict(pixels, count) {
      if (pixels.length !== count * size * size * 3) {
        throw new InputError(`expected ${count} images of ${size}x${size}x3 (${count * size * size * 3} bytes), got ${pixels.length} bytes`);
      }
      if (count === 0) return new Float32Array(0);
      const features = await backbone.extract(pixels, count);
      const dim = features.length / count;
      const probs = tf.tidy(() => head.predict(tf.tensor2d(features, [count, dim])) as import('@tensorflow/tfjs-core').Tensor);
      try {
        const out = (await probs.data()) as Float32Array;
        if (out.length !== count * classes)
          throw new InputError(`${headPath}: the head gives ${out.length / count} outputs, the card lists ${classes} labels`);
        return out;
      } finally {
        probs.dispose();
      }
    },
    async dispose() {
      head.dispose();
      await backbone.dispose();
    },
  };
}
