import type { Logger, ModelCard } from '@imgpipe/kit';
import type { Device } from './device.js';

/** What loadModel gives and takes (model-load.ts, whole-model-load.ts). */
export interface LoadedModel {
  dir: string;
  card: ModelCard;
  labels: string[];
  inputSize: number;
  /** How many predict() calls can usefully run at once: the backbone's (workers of a TF.js wasm pool; 1 otherwise). */
  concurrency: number;
  /** count images of inputSize^2 RGB uint8 NHWC in; count*labels.length softmax probabilities out. */
  predict(pixels: Uint8Array, count: number): Promise<Float32Array>;
  dispose(): Promise<void>;
}

export interface LoadModelOptions {
  device: Device;
  log?: Logger;
  /** Download cache for a model given as s3:// (when supported) or a backbone given by URL. */
  cacheDir?: string;
  /** TF.js backbone on WebAssembly: worker threads (default: one per core); sets `concurrency`. */
  workers?: number;
  /** See LoadBackboneOptions.sharedCpu: set by serve, whose decoding shares the cores with inference. */
  sharedCpu?: boolean;
  /** See LoadBackboneOptions.offMainThread: set by serve, whose event loop must not stop during a batch. */
  offMainThread?: boolean;
  /** Run model.onnx when the card lists it (default true); false runs the backbone and the TF.js head. */
  wholeModel?: boolean;
}
