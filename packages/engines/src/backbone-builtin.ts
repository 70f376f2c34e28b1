import { join } from 'node:path';
import type { ResolvedBackbone } from './backbone-types.js';
import { downloadToFile, verifyCached, type FetchOptions } from './backbone-fetch.js';
import { resolveCacheDir } from './cache-dir.js';
import { FailureError, isRegularFile, messageOf, type Logger } from '@imgpipe/kit';
import { decodeOnnx } from './onnx-graph.js';

interface BuiltinBackbone {
  description: string;
  /** The file's path in the ONNX Model Zoo (onnx/models on GitHub, onnxmodelzoo/legacy_models on Hugging Face). */
  zooPath: string;
  /** Size and sha256 of the published file (from its Git LFS pointer): a file with other bytes is never used. */
  bytes: number;
  sha256: string;
  /** Environment variable with mirror URLs (space-separated, tried in order) that replace the published sources. */
  urlEnv: string;
  preprocess: string;
  inputSize: number;
  featureDim: number;
  /** ImageNet top-1 accuracy (%) as published by the Model Zoo. */
  top1: number;
}

const ZOO = 'validated/vision/classification';

/**
 * Built-in backbones: ONNX Model Zoo files, now published on Hugging Face (onnxmodelzoo/legacy_models) since the
 * GitHub repository stopped serving Git LFS files on 2025-07-01; GitHub stays as a second source. Features are
 * each model's global-pool output, found in the graph by op type.
 */
export const BUILTIN_BACKBONES: Record<string, BuiltinBackbone> = {
  resnet50: {
    description: "ImageNet ResNet50 v1 (the seed's model family), torch preprocessing",
    zooPath: `${ZOO}/resnet/model/resnet50-v1-12.onnx`,
    bytes: 102_576_593,
    sha256: '3f03fdef724b22947eed826f1eef1dc5c34151bb4c37d634f1db89dfa2dd1526',
    urlEnv: 'IMGPIPE_RESNET50_URL',
    preprocess: 'torch',
    inputSize: 224,
    featureDim: 2048,
    top1: 74.97,
  },
  'resnet50-int8': {
    description: 'ResNet50 v1 quantized to int8 (Intel Neural Compressor): a quarter of the size, faster on CPU',
    zooPath: `${ZOO}/resnet/model/resnet50-v1-12-int8.onnx`,
    bytes: 25_816_052,
    sha256: 'c234f30975989788b4405f25253275aae247ab6dbdd34aaa69ab0a59ff76f6d0',
    urlEnv: 'IMGPIPE_RESNET50_INT8_URL',
    preprocess: 'torch',
    inputSize: 224,
    featureDim: 2048,
    top1: 74.77,
  },
  mobilenetv2: {
    description: 'ImageNet MobileNet v2 1.0: the fast one, torch preprocessing',
    zooPath: `${ZOO}/mobilenet/model/mobilenetv2-12.onnx`,
    bytes: 13_964_571,
    sha256: 'c0c3f76d93fa3fd6580652a45618618a220fced18babf65774ed169de0432ad5',
    urlEnv: 'IMGPIPE_MOBILENETV2_URL',
    preprocess: 'torch',
    inputSize: 224,
    featureDim: 1280,
    top1: 70.94,
  },
  'efficientnet-lite4': {
    description: 'ImageNet EfficientNet-Lite4: the most accurate, NHWC input scaled as (x - 127) / 128',
    zooPath: `${ZOO}/efficientnet-lite4/model/efficientnet-lite4-11.onnx`,
    bytes: 51_946_641,
    sha256: 'd111689907c06eea7c82e4833ddef758da6453b9d4cf60b7e99ca05c7cbd9c12',
    urlEnv: 'IMGPIPE_EFFICIENTNET_LITE4_URL',
    preprocess: 'efficientnet-lite',
    inputSize: 224,
    featureDim: 1280,
    top1: 80.4,
  },
};

export const BUILTIN_NAMES = Object.keys(BUILTIN_BACKBONES);

const fileName = (builtin: BuiltinBackbone) => builtin.zooPath.split('/').pop()!;

/** Where a built-in lives in the cache: <cache>/backbones/<file>. */
export function builtinPath(name: string, cacheDir?: string): string {
  return join(resolveCacheDir(cacheDir), 'backbones', fileName(BUILTIN_BACKBONES[name]!));
}

/**
 * The URLs a built-in is fetched from, in order: the mirrors in its URL variable when set (they replace the
 * rest), else Hugging Face ($HF_ENDPOINT, the Hugging Face convention for mirrors, or huggingface.co), then GitHub.
 */
export function builtinSources(name: string, env: NodeJS.ProcessEnv = process.env): string[] {
  const builtin = BUILTIN_BACKBONES[name]!;
  const mirrors = (env[builtin.urlEnv] ?? '').split(/\s+/).filter(Boolean);
  if (mirrors.length > 0) return mirrors;
  const hf = (env.HF_ENDPOINT || 'https://huggingface.co').replace(/\/+$/, '');
  return [`${hf}/onnxmodelzoo/legacy_models/resolve/main/${builtin.zooPath}`, `https://github.com/onnx/models/raw/main/${builtin.zooPath}`];
}

export async function resolveBuiltin(name: string, options: Omit<FetchOptions, 'log'> & { log: Logger }): Promise<ResolvedBackbone> {
  const builtin = BUILTIN_BACKBONES[name]!;
  const path = builtinPath(name, options.cacheDir);
  const sources = builtinSources(name);
  const resolved = (source: string): ResolvedBackbone => ({ name, source, path, format: 'onnx', preprocess: builtin.preprocess, poolFeatures: true });
  if (await isRegularFile(path)) {
    await verifyCached(path, builtin.sha256, builtin.bytes);
    return resolved(sources[0]!);
  }
  const failures: string[] = [];
  for (const url of sources) {
    options.log.info(`backbone ${name}: downloading ${url} into ${path}`);
    try {
      await downloadToFile(url, path, options, (bytes) => void decodeOnnx(bytes, url), { sha256: builtin.sha256, bytes: builtin.bytes });
      return resolved(url);
    } catch (error) {
      failures.push(`${url}: ${messageOf(error)}`);
      if (sources.length > 1) options.log.warn(`backbone ${name}: ${url} failed (${messageOf(error)})`);
    }
  }
  throw new FailureError(offlineHelp(name, path, failures));
}

function offlineHelp(name: string, path: string, failures: string[]): string {
  const builtin = BUILTIN_BACKBONES[name]!;
  const sources = builtinSources(name);
  return [
    `cannot get the built-in backbone '${name}'; every source failed:`,
    ...failures.map((f) => `  - ${f}`),
    `Get the file on a machine with network access and put it at ${path}`,
    `(file ${fileName(builtin)}, ${builtin.bytes} bytes, sha256 ${builtin.sha256}; any other bytes are refused):`,
    `  curl -fL -o ${path} ${sources[0]}`,
    `or pass your own model with --backbone FILE, e.g. torchvision's ResNet50 exported to ONNX (pip install torch torchvision):`,
    `  python -c "import torch, torchvision; m = torchvision.models.resnet50(weights='IMAGENET1K_V2').eval(); torch.onnx.export(m, torch.randn(1, 3, 224, 224), 'resnet50.onnx', input_names=['input'], output_names=['logits'], dynamic_axes={'input': {0: 'n'}, 'logits': {0: 'n'}}, opset_version=17)"`,
    `The cache directory is set by --cache-dir or IMGPIPE_CACHE_DIR; mirrors by ${builtin.urlEnv} (space-separated URLs) or HF_ENDPOINT.`,
  ].join('\n');
}

/** `train --list-backbones`: one block per built-in. */
export async function formatBuiltinList(cacheDir?: string): Promise<string> {
  const blocks: string[] = [];
  for (const [name, builtin] of Object.entries(BUILTIN_BACKBONES)) {
    const path = builtinPath(name, cacheDir);
    const cached = (await isRegularFile(path)) ? `cached at ${path}` : `not cached (would be ${path})`;
    blocks.push(
      [
        `${name}${name === 'resnet50' ? ' (default)' : ''}: ${builtin.description}`,
        `  file ${fileName(builtin)}, ${(builtin.bytes / 1e6).toFixed(1)} MB, sha256 ${builtin.sha256}`,
        `  input ${builtin.inputSize}x${builtin.inputSize} RGB, preprocess ${builtin.preprocess}, ${builtin.featureDim} features, ImageNet top-1 ${builtin.top1}% (as published)`,
        `  ${cached}`,
        ...builtinSources(name).map((url, i) => `  source ${i + 1}: ${url}`),
      ].join('\n'),
    );
  }
  return `${blocks.join('\n\n')}\n`;
}
