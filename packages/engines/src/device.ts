import { existsSync, readdirSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { DEVICES, UsageError } from '@imgpipe/kit';

/** Where TensorFlow.js (heads, TF.js backbones) and ONNX Runtime (ONNX backbones) run. */
export type Device = (typeof DEVICES)[number];
export type ConcreteDevice = Exclude<Device, 'auto'>;

export interface DeviceStatus {
  device: string;
  engine: 'tfjs' | 'onnxruntime';
  available: boolean;
  /** Which package provides it, or what is missing and how to install it. */
  detail: string;
}

function isDevice(value: unknown): value is Device {
  return typeof value === 'string' && (DEVICES as readonly string[]).includes(value);
}

/** Validate a --device value (config train.device). */
export function parseDevice(value: unknown, flag = '--device'): Device {
  if (isDevice(value)) return value;
  throw new UsageError(`expected ${flag} to be one of ${DEVICES.join(', ')}, got '${String(value)}'`);
}

/** Threads for CPU work: ONNX Runtime intra-op threads, TF.js wasm workers. */
export function cpuThreads(): number {
  return Math.max(1, availableParallelism());
}

/** How to get each optional device, used in errors and in --list-devices. */
export const INSTALL_HINTS = {
  tfjsNode: 'install @tensorflow/tfjs-node@4.22.0 next to imgpipe (npm i @tensorflow/tfjs-node@4.22.0; it downloads libtensorflow)',
  tfjsNodeGpu:
    'install @tensorflow/tfjs-node-gpu@4.22.0 next to imgpipe (npm i @tensorflow/tfjs-node-gpu@4.22.0; needs an NVIDIA driver, CUDA 11.8 and cuDNN 8.6, and downloads libtensorflow)',
  ortCuda:
    'reinstall onnxruntime-node with its CUDA parts (ONNXRUNTIME_NODE_INSTALL_CUDA=v12 npm rebuild onnxruntime-node; needs an NVIDIA driver, CUDA 12 and cuDNN 9), or use --device webgpu',
  webgpu: 'needs a GPU with a working Vulkan (Linux), Metal (macOS) or D3D12 (Windows) driver',
  tfjsWebgpu:
    'install webgpu@0.6.2 and @tensorflow/tfjs-backend-webgpu@4.22.0 next to imgpipe (npm i webgpu@0.6.2 @tensorflow/tfjs-backend-webgpu@4.22.0)',
} as const;

/**
 * Why `auto` should not try WebGPU here, or undefined. On Linux a GPU shows as a DRM render node or an NVIDIA
 * device; without one, probing Dawn only prints native Vulkan warnings, so `auto` does not probe at all.
 * IMGPIPE_NO_WEBGPU=1 opts out everywhere.
 */
export function webgpuUnlikely(env: NodeJS.ProcessEnv = process.env): string | undefined {
  if (env.IMGPIPE_NO_WEBGPU) return 'IMGPIPE_NO_WEBGPU is set';
  if (process.platform !== 'linux') return undefined;
  const renderNode = existsSync('/dev/dri') && readdirSync('/dev/dri').some((name) => name.startsWith('renderD'));
  if (renderNode || existsSync('/dev/nvidia0') || existsSync('/dev/dxg')) return undefined;
  return 'no GPU device (/dev/dri/renderD*, /dev/nvidia0)';
}
