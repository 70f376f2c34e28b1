import { join } from 'node:path';
import type { LoadBackboneOptions, ResolvedBackbone } from './backbone-types.js';
import { downloadToFile, verifyCached } from './backbone-fetch.js';
import { resolveCacheDir } from './cache-dir.js';
import { FailureError, messageOf, exists, type Logger } from '@imgpipe/kit';
import { decodeOnnx } from './onnx-graph.js';

export interface BuiltinBackbone {
  description: string;
  file: string;
  url: string;
  /** Environment variable that overrides the URL (mirrors, air-gapped installs, tests). */
  urlEnv: string;
  preprocess: string;
  /**
   * sha256 of the published file, checked on download and on every load when set. resnet50's is not set yet: the
   * Model Zoo stores it in Git LFS and no published checksum could be looked up from here; until it is pinned,
   * the sha256 recorded at download (<file>.sha256) is what later loads are checked against.
   */
  sha256?: string;
}

/**
 * Built-in backbones. resnet50 is the ONNX Model Zoo's ResNet50 v1 (opset 12, ImageNet, 224x224 NCHW, torch
 * preprocessing); its features are the global-average-pool output (2048 values), found in the graph by op type.
 */
export const BUILTIN_BACKBONES: Record<string, BuiltinBackbone> = {
  resnet50: {
    description: 'ImageNet ResNet50 v1 (ONNX Model Zoo resnet50-v1-12), 2048 global-pool features, torch preprocessing',
    file: 'resnet50-v1-12.onnx',
    url: 'https://github.com/onnx/models/raw/main/validated/vision/classification/resnet/model/resnet50-v1-12.onnx',
    urlEnv: 'IMGPIPE_RESNET50_URL',
    preprocess: 'torch',
  },
};

/** Where a built-in lives in the cache: <cache>/backbones/<file>. */
export function builtinPath(name: string, cacheDir?: string): string {
  return join(resolveCacheDir(cacheDir), 'backbones', BUILTIN_BACKBONES[name]!.file);
}

export async function resolveBuiltin(name: string, options: Pick<LoadBackboneOptions, 'cacheDir' | 'progress' | 'maxDownloadBytes' | 'downloadTimeoutMs'> & { log: Logger }): Promise<ResolvedBackbone> {
  const builtin = BUILTIN_BACKBONES[name]!;
  const path = builtinPath(name, options.cacheDir);
  const url = process.env[builtin.urlEnv] || builtin.url;
  const resolved: ResolvedBackbone = { name, source: url, path, format: 'onnx', preprocess: builtin.preprocess, poolFeatures: true };
  if (await exists(path)) {
    await verifyCached(path, builtin.sha256);
    return resolved;
  }
  options.log.info(`backbone ${name}: downloading ${url} into ${path}`);
  try {
    await downloadToFile(url, path, options, (bytes) => void decodeOnnx(bytes, url), builtin.sha256);
  } catch (error) {
    throw new FailureError(offlineHelp(name, path, url, messageOf(error)), { cause: error });
  }
  return resolved;
}

function offlineHelp(name: string, path: string, url: string, why: string): string {
  return [
    `cannot get the built-in backbone '${name}' (${why}).`,
    `Get the file on a machine with network access and put it at ${path}:`,
    `  curl -L -o ${path} ${url}`,
    `or export torchvision's ResNet50 (pip install torch torchvision) and put it there, or pass it with --backbone FILE:`,
    `  python -c "import torch, torchvision; m = torchvision.models.resnet50(weights='IMAGENET1K_V2').eval(); torch.onnx.export(m, torch.randn(1, 3, 224, 224), 'resnet50.onnx', input_names=['input'], output_names=['logits'], dynamic_axes={'input': {0: 'n'}, 'logits': {0: 'n'}}, opset_version=17)"`,
    `The cache directory is set by --cache-dir or IMGPIPE_CACHE_DIR; a mirror URL by ${BUILTIN_BACKBONES[name]!.urlEnv}.`,
  ].join('\n');
}
