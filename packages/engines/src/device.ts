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

export function isDevice(value: unknown): value is Device {
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
    "reinstall onnxruntime-node with its CUDA parts (ONNXRUNTIME_NODE_INSTALL_CUDA=v12 npm rebuild onnxruntime-node; needs an NVIDIA driver, CUDA 12 and cuDNN 9), or use --device webgpu",
  webgpu: 'needs a GPU with a working Vulkan (Linux), Metal (macOS) or D3D12 (Windows) driver for Dawn (the webgpu package)',
} as const;
