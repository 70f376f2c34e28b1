import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { createS3Client, downloadPublication, isS3Uri, parseS3Uri, readPublication, type S3Client } from '@imgpipe/s3';
import { decodeToTensor, decodeWithView } from '@imgpipe/images';
import { InputError, silentLogger, type ImgpipeConfig, type Logger } from '@imgpipe/kit';
import { loadModel, type LoadedModel, loadTf, type Device, type Tta, withTta } from '@imgpipe/engines';
import type { ModelLoader, ServedModel } from './serve.js';

interface ModelLoaderOptions {
  device: Device;
  aws: ImgpipeConfig['aws'];
  log?: Logger;
  maxPixels: number;
  /** Per decode, where libvips can stop (serve --decode-timeout). */
  decodeTimeoutSeconds?: number;
  /** Test-time augmentation; default: the card's tta (what eval-model measured), else 'none'. */
  tta?: Tta | undefined;
}

/**
 * Loads a model directory, or the model of a publication (s3://bucket/prefix/, or …/prefix/model: what its
 * publication.json lists, verified, downloaded once into a temp dir removed at shutdown), with loadModel (which
 * verifies the directory as a whole), and decodes requests with decodeToTensor using the card's size and fit.
 */
export function createModelLoader(options: ModelLoaderOptions): ModelLoader {
  const log = options.log ?? silentLogger;
  return async (spec) => {
    let tempDir: string | undefined;
    let dir = spec;
    try {
      if (isS3Uri(spec)) {
        tempDir = await mkdtemp(join(tmpdir(), 'imgpipe-serve-model-'));
        log.info(`downloading ${spec}`);
        const client = createS3Client(options.aws);
        try {
          dir = await downloadPublishedModel(client, spec, join(tempDir, 'model'));
        } finally {
          client.destroy();
        }
      }
      const loaded = await loadModel(dir, { device: options.device, log, sharedCpu: true, offMainThread: true });
      const { tf } = await loadTf(options.device, silentLogger);
      const cleanup = tempDir;
      const tta = options.tta ?? (loaded.card.tta === 'flip' ? 'flip' : 'none');
      if (tta !== 'none') log.info(`tta ${tta}: each image is predicted with its mirror (twice the backbone work)`);
      return servedModel(loaded, {
        tta,
        name: modelNameFor(spec),
        maxPixels: options.maxPixels,
        decodeTimeoutSeconds: options.decodeTimeoutSeconds,
        numTensors: () => tf.memory().numTensors,
        cleanup: cleanup ? () => rm(cleanup, { recursive: true, force: true }) : undefined,
        local: !cleanup,
      });
    } catch (error) {
      if (tempDir) await rm(tempDir, { recursive: true, force: true });
      throw error;
    }
  };
}

/**
 * The model of the publication at `spec` (s3://bucket/prefix/ or s3://bucket/prefix/model) into `dest`: only what
 * prefix/publication.json lists, each object checked against its size and sha256.
 */
export async function downloadPublishedModel(client: S3Client, spec: string, dest: string): Promise<string> {
  const { bucket, key } = parseS3Uri(spec, '--model');
  const prefix = key.replace(/\/+$/, '');
  const candidates = [prefix, ...(basename(prefix) === 'model' ? [dirname(prefix) === '.' ? '' : dirname(prefix)] : [])];
  for (const candidate of candidates) {
    if (!(await readPublication(client, bucket, candidate))) continue;
    await downloadPublication(client, bucket, candidate, dest, { dir: 'model/' });
    return dest;
  }
  throw new InputError(
    `--model ${spec}: no publication.json there${candidates.length > 1 ? ' or one level up' : ''}; publish the run with upload-s3 --prefix, or copy a model directory and pass it`,
  );
}

/** Wrap a loaded model for serving: decoder from its card, a name, tf's tensor count. */
export function servedModel(
  loaded: LoadedModel,
  options: {
    tta?: Tta;
    name: string;
    maxPixels: number;
    decodeTimeoutSeconds?: number | undefined;
    numTensors: () => number;
    cleanup?: (() => Promise<void>) | undefined;
    local?: boolean;
  },
): ServedModel {
  const { size, fit } = loaded.card.input;
  const tta = options.tta ?? 'none';
  const model = withTta(loaded, tta);
  const decodeOptions = {
    size,
    fit,
    maxPixels: options.maxPixels,
    ...(options.decodeTimeoutSeconds ? { timeoutSeconds: options.decodeTimeoutSeconds } : {}),
  };
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
    decode: (bytes) => decodeToTensor(bytes, decodeOptions),
    decodeWithView: (bytes, maxViewPixels) => decodeWithView(bytes, { ...decodeOptions, maxViewPixels }),
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
function modelNameFor(spec: string): string {
  const path = spec.replace(/^s3:\/\/[^/]+\/?/, '').replace(/\/+$/, '');
  const own = basename(path);
  const chosen = own === 'model' && basename(dirname(path)) && dirname(path) !== '.' ? basename(dirname(path)) : own;
  return chosen.replace(/[^\w.-]+/g, '-').replace(/^-+|-+$/g, '') || 'model';
}
