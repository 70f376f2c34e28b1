import { open, readdir, stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import type { Device } from './device.js';
import { InputError, UsageError, exists, silentLogger, type BackboneInfo, type Logger } from '@imgpipe/kit';


/** A loaded backbone: uint8 RGB NHWC pixels in, float32 features out. */
export interface Backbone {
  info: BackboneInfo;
  /** Files to copy into model/backbone/ (the ONNX file, or model.json and its weight files). */
  files: string[];
  /** The device it runs on (TF.js backend or ONNX Runtime execution provider). */
  device: Exclude<Device, 'auto'>;
  /** How many extract() calls can usefully run at once (workers of a TF.js wasm pool; 1 otherwise). */
  concurrency: number;
  /** count images of info.input_size^2 RGB uint8 NHWC in; count*feature_dim float32 out. */
  extract(pixels: Uint8Array, count: number): Promise<Float32Array>;
  dispose(): Promise<void>;
}

export interface LoadBackboneOptions {
  device: Device;
  /** TF.js: a layer (layers model) or node (graph model) name; ONNX: a value name. Default: the model's output. */
  featureLayer?: string;
  /** torch | tf | caffe | none; default: what the model records, else torch (ONNX) or tf (TF.js). */
  preprocess?: string;
  /** Download cache for built-ins and URLs; default $IMGPIPE_CACHE_DIR or ~/.cache/imgpipe. */
  cacheDir?: string;
  log?: Logger;
  /** Input size when the model does not fix it (symbolic dimensions); default 224. */
  inputSize?: number;
  /** TF.js on WebAssembly: worker threads, one backend each; default: the number of cores. */
  workers?: number;
  /** Show download progress (default: unless log is quiet). */
  progress?: boolean;
  /** Largest file a download may bring, in bytes; default $IMGPIPE_MAX_DOWNLOAD_BYTES or 2 GiB. */
  maxDownloadBytes?: number;
  /** A download that connects or delivers nothing for this long (ms) fails; default $IMGPIPE_DOWNLOAD_TIMEOUT_MS or 30 s. */
  downloadTimeoutMs?: number;
}

/** Where a spec points after built-ins and URLs are resolved to local files. */
export interface ResolvedBackbone {
  name: string;
  source: string;
  path: string;
  format: 'onnx' | 'tfjs';
  /** Defaults a built-in brings (feature layer, preprocessing). */
  featureLayer?: string;
  preprocess?: string;
  /** Default feature layer: the global-pooling output, found in the graph (built-ins). */
  poolFeatures?: boolean;
}

/**
 * Load a backbone: a built-in name (resnet50), an .onnx file, a TF.js model.json (layers or graph), a directory
 * holding one of those (a model directory's backbone/), or an http(s) URL of either (downloaded into the cache).
 */
export async function loadBackbone(spec: string, options: LoadBackboneOptions): Promise<Backbone> {
  const log = options.log ?? silentLogger;
  const resolved = await resolveBackbone(spec, { ...options, log });
  if (resolved.format === 'onnx') {
    const { loadOnnxBackbone } = await import('./backbone-onnx.js');
    return loadOnnxBackbone(resolved, { ...options, log });
  }
  const { loadTfjsBackbone } = await import('./backbone-tfjs.js');
  return loadTfjsBackbone(resolved, { ...options, log });
}

export async function resolveBackbone(spec: string, options: LoadBackboneOptions & { log: Logger }): Promise<ResolvedBackbone> {
  if (!spec) throw new UsageError('expected --backbone to name a built-in (resnet50), an .onnx file, a TF.js model.json or a URL');
  const { BUILTIN_BACKBONES, resolveBuiltin } = await import('./backbone-builtin.js');
  if (Object.hasOwn(BUILTIN_BACKBONES, spec)) return resolveBuiltin(spec, options);
  if (/^https?:\/\//i.test(spec)) {
    const { fetchBackbone } = await import('./backbone-fetch.js');
    return fetchBackbone(spec, options);
  }
  return resolveLocal(resolve(spec), spec);
}

/** A local .onnx, model.json, or a directory with exactly one of them. */
export async function resolveLocal(path: string, source = path): Promise<ResolvedBackbone> {
  const info = await stat(path).catch(() => undefined);
  if (!info) {
    throw new UsageError(`backbone '${source}' is neither a built-in (${['resnet50'].join(', ')}) nor an existing file or URL (--backbone)`);
  }
  if (info.isDirectory()) {
    for (const candidate of ['model.onnx', 'model.json']) {
      if (await exists(join(path, candidate))) return resolveLocal(join(path, candidate), source);
    }
    const onnx = (await readdir(path)).filter((f) => f.endsWith('.onnx'));
    if (onnx.length === 1) return resolveLocal(join(path, onnx[0]!), source);
    throw new InputError(`backbone directory ${path} holds no model.onnx, model.json or single .onnx file (--backbone)`);
  }
  const name = source.replace(/\/+$/, '').split('/').pop()!.replace(/\.(onnx|json)$/, '');
  if (path.endsWith('.json')) return { name, source, path, format: 'tfjs' };
  if (path.endsWith('.onnx') || (await looksLikeOnnx(path))) return { name, source, path, format: 'onnx' };
  throw new InputError(`backbone ${path} is neither an .onnx file nor a TF.js model.json (--backbone)`);
}

async function looksLikeOnnx(path: string): Promise<boolean> {
  const handle = await open(path, 'r');
  try {
    const { buffer, bytesRead } = await handle.read(Buffer.alloc(1), 0, 1, 0);
    return bytesRead === 1 && buffer[0] === 0x08; // field 1 (ir_version), varint: how ONNX files start
  } finally {
    await handle.close();
  }
}
