import { open, readdir, stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { InputError, UsageError, exists, silentLogger, type Logger } from '@imgpipe/kit';
import type { Backbone, LoadBackboneOptions, ResolvedBackbone } from './backbone-types.js';

export type { Backbone, LoadBackboneOptions } from './backbone-types.js';

/**
 * Load a backbone: a built-in name (resnet50, mobilenetv2, ...: BUILTIN_BACKBONES), an .onnx file, a TF.js model.json (layers or graph), a directory
 * holding one of those (a model directory's backbone/), or an http(s) URL of either (downloaded into the cache).
 */
export async function loadBackbone(spec: string, options: LoadBackboneOptions): Promise<Backbone> {
  const log = options.log ?? silentLogger;
  const resolved = await resolveBackbone(spec, { ...options, log });
  if (resolved.format === 'onnx') {
    const { loadOnnxBackbone } = await import('./backbone-onnx.js');
    return loadOnnxBackbone(resolved, { ...options, log });
  }
  const { loadTfjsOnOnnx } = await import('./backbone-tfjs-onnx.js');
  const converted = await loadTfjsOnOnnx(resolved, { ...options, log });
  if (converted) return converted;
  const { loadTfjsBackbone } = await import('./backbone-tfjs.js');
  return loadTfjsBackbone(resolved, { ...options, log });
}

export async function resolveBackbone(spec: string, options: LoadBackboneOptions & { log: Logger }): Promise<ResolvedBackbone> {
  if (!spec) throw new UsageError('expected --backbone to name a built-in (train --list-backbones), an .onnx file, a TF.js model.json or a URL');
  const { BUILTIN_BACKBONES, resolveBuiltin } = await import('./backbone-builtin.js');
  if (Object.hasOwn(BUILTIN_BACKBONES, spec)) return resolveBuiltin(spec, options);
  if (/^https?:\/\//i.test(spec)) {
    const { fetchBackbone } = await import('./backbone-fetch.js');
    return fetchBackbone(spec, options);
  }
  return resolveLocal(resolve(spec), spec);
}

/** A local .onnx, model.json, or a directory with exactly one of them. */
async function resolveLocal(path: string, source = path): Promise<ResolvedBackbone> {
  const info = await stat(path).catch(() => undefined);
  if (!info) {
    const { BUILTIN_NAMES } = await import('./backbone-builtin.js');
    throw new UsageError(
      `backbone '${source}' is neither a built-in (${BUILTIN_NAMES.join(', ')}; train --list-backbones) nor an existing file or URL (--backbone)`,
    );
  }
  if (info.isDirectory()) {
    for (const candidate of ['model.onnx', 'model.json']) {
      if (await exists(join(path, candidate))) return resolveLocal(join(path, candidate), source);
    }
    const onnx = (await readdir(path)).filter((f) => f.endsWith('.onnx'));
    if (onnx.length === 1) return resolveLocal(join(path, onnx[0]!), source);
    throw new InputError(`backbone directory ${path} holds no model.onnx, model.json or single .onnx file (--backbone)`);
  }
  const name = source
    .replace(/\/+$/, '')
    .split('/')
    .pop()!
    .replace(/\.(onnx|json)$/, '');
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
