import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { createS3Client, downloadPrefix, isS3Uri, parseS3Uri } from '@imgpipe/s3';
import { decodeToTensor } from '@imgpipe/images';
import { InputError, silentLogger, type ImgpipeConfig, type Logger } from '@imgpipe/kit';
import { loadModel, type LoadedModel, loadTf, type Device } from '@imgpipe/engines';
import type { ModelLoader, ServedModel } from './serve.js';

export interface ModelLoaderOptions {
  device: Device;
  aws: ImgpipeConfig['aws'];
  log?: Logger;
  maxPixels: number;
  /** Per decode, where libvips can stop (serve --decode-timeout). */
  decodeTimeoutSeconds?: number;
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
      return servedModel(loaded, { name: modelNameFor(spec), maxPixels: options.maxPixels, decodeTimeoutSeconds: options.decodeTimeoutSeconds, numTensors: () => tf.memory().numTensors, cleanup: cleanup ? () => rm(cleanup, { recursive: true, force: true }) : undefined });
    } catch (error) {
      if (tempDir) await rm(tempDir, { recursive: true, force: true });
      throw error;
    }
  };
}

/** Wrap a loaded model for serving: decoder from its card, a name, tf's tensor count. */
export function servedModel(
  loaded: LoadedModel,
  options: { name: string; maxPixels: number; decodeTimeoutSeconds?: number | undefined; numTensors: () => number; cleanup?: (() => Promise<void>) | undefined },
): ServedModel {
  const { size, fit } = loaded.card.input;
  return {
    name: [loaded.card.name, loaded.card.project].find((n): n is string => typeof n === 'string' && /^[\w.-]+$/.test(n)) ?? options.name,
    version: undefined,
    labels: loaded.labels,
    inputSize: loaded.inputSize,
    // A TF.js backbone on WebAssembly runs in a pool of worker threads: one batch per worker keeps every core
    // busy. LoadedModel exposes it as `concurrency` when the model-dir code does; 1 otherwise (ONNX Runtime
    // already uses every core for one call).
    concurrency: typeof (loaded as { concurrency?: unknown }).concurrency === 'number' ? (loaded as unknown as { concurrency: number }).concurrency : 1,
    predict: (pixels, count) => loaded.predict(pixels, count),
    decode: (bytes) => decodeToTensor(bytes, { size, fit, maxPixels: options.maxPixels, ...(options.decodeTimeoutSeconds ? { timeoutSeconds: options.decodeTimeoutSeconds } : {}) }),
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
