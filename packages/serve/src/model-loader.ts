import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { createS3Client, downloadPrefix, isS3Uri, parseS3Uri } from '@imgpipe/s3';
import { decodeToTensor } from '@imgpipe/images';
import { InputError, silentLogger, type ImgpipeConfig, type Logger } from '@imgpipe/kit';
import { loadModel, type LoadedModel, loadTf, type Device, type Tta, withTta } from '@imgpipe/engines';
import type { ModelLoader, ServedModel } from './serve.js';

export interface ModelLoaderOptions {
  device: Device;
  aws: ImgpipeConfig['aws'];
  log?: Logger;
  maxPixels: number;
  /** Test-time augmentation; default: the card's tta (what eval-model measured), else 'none'. */
  tta?: Tta | undefined;
}

/**
 * Loads a model directory (or s3://bucket/prefix/model, downloaded once into a temp dir removed at shutdown)
 * with core's loadModel, and decodes requests with core's decodeToTensor using the card's size and fit: the
 * same pixels training saw.
 */
export function createModelLoader(options: ModelLoaderOptions): ModelLoader {
  const log = options.log ?? silentLogger;
  return async (spec) => {
    let tempDir: string | undefined;
    let dir = spec;
    try {
      if (isS3Uri(spec)) {
        const { bucket, key } = parseS3Uri(spec, '--model');
        tempDir = await mkdtemp(join(tmpdir(), 'imgpipe-serve-model-'));
        log.info(`downloading ${spec}`);
        const client = createS3Client(options.aws);
        const files = await downloadPrefix(client, bucket, key, tempDir).finally(() => client.destroy());
        if (files.length === 0) throw new InputError(`--model ${spec}: no objects under that prefix (expected card.json, backbone/, head/)`);
        dir = tempDir;
      }
      const loaded = await loadModel(dir, { device: options.device, log });
      const { tf } = await loadTf(options.device, silentLogger);
      const cleanup = tempDir;
      const tta = options.tta ?? (loaded.card.tta === 'flip' ? 'flip' : 'none');
      if (tta !== 'none') log.info(`tta ${tta}: each image is predicted with its mirror (twice the backbone work)`);
      return servedModel(loaded, { tta, name: modelNameFor(spec), maxPixels: options.maxPixels, numTensors: () => tf.memory().numTensors, cleanup: cleanup ? () => rm(cleanup, { recursive: true, force: true }) : undefined, local: !cleanup });
    } catch (error) {
      if (tempDir) await rm(tempDir, { recursive: true, force: true });
      throw error;
    }
  };
}

/** Wrap a loaded model for serving: decoder from its card, a name, tf's tensor count. */
export function servedModel(
  loaded: LoadedModel,
  options: { tta?: Tta; name: string; maxPixels: number; numTensors: () => number; cleanup?: (() => Promise<void>) | undefined; local?: boolean },
): ServedModel {
  const { size, fit } = loaded.card.input;
  const tta = options.tta ?? 'none';
  const model = withTta(loaded, tta);
  return {
    name: [loaded.card.name, loaded.card.project].find((n): n is string => typeof n === 'string' && /^[\w.-]+$/.test(n)) ?? options.name,
    version: undefined,
    labels: loaded.labels,
    inputSize: loaded.inputSize,
    card: { ...loaded.card, tta },
    dir: options.local ? resolve(loaded.dir) : undefined,
    // A TF.js backbone on WebAssembly runs in a pool of worker threads: one batch per worker keeps every core
    // busy (the batcher runs up to this many at once); 1 for ONNX Runtime, which uses every core for one call.
    concurrency: loaded.concurrency,
    predict: (pixels, count) => model.predict(pixels, count),
    decode: (bytes) => decodeToTensor(bytes, { size, fit, maxPixels: options.maxPixels }),
    numTensors: options.numTensors,
    async dispose() {
      await loaded.dispose();
      await options.cleanup?.();
    },
  };
}

/**
 * The V2 model name when --name is not given: the model directory's name, or its parent's when the directory
 * is the run layout's `model/` (runs/20261127-0512-ab12/model -> 20261127-0512-ab12); only [A-Za-z0-9_.-].
 */
export function modelNameFor(spec: string): string {
  const path = spec.replace(/^s3:\/\/[^/]+\/?/, '').replace(/\/+$/, '');
  const own = basename(path);
  const chosen = own === 'model' && basename(dirname(path)) && dirname(path) !== '.' ? basename(dirname(path)) : own;
  return chosen.replace(/[^\w.-]+/g, '-').replace(/^-+|-+$/g, '') || 'model';
}
