import type { BackboneInfo, Logger } from '@imgpipe/kit';
import type { Device } from './device.js';

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
  /** torch | tf | caffe | efficientnet-lite | none; default: what the model records, else torch (ONNX) or tf (TF.js). */
  preprocess?: string;
  /** Download cache for built-ins and URLs; default $IMGPIPE_CACHE_DIR or ~/.cache/imgpipe. */
  cacheDir?: string;
  log?: Logger;
  /** Input size when the model does not fix it (symbolic dimensions); default 224. */
  inputSize?: number;
  /** TF.js on WebAssembly: worker threads, one backend each; default: the number of cores. */
  workers?: number;
  /**
   * The process does CPU work of its own between inference calls (serve decodes and encodes images): ONNX Runtime's
   * threads then sleep when idle instead of spinning, leaving those cores to it. Default false (batch tools).
   */
  sharedCpu?: boolean;
  /**
   * ONNX Runtime: run the session in a worker thread. Its Node binding runs a batch synchronously on the calling
   * thread, which a server cannot afford (no request is read, decoded or answered meanwhile). Default false.
   */
  offMainThread?: boolean;
  /** Show download progress (default: unless log is quiet). */
  progress?: boolean;
  /** Largest file a download may bring, in bytes; default $IMGPIPE_MAX_DOWNLOAD_BYTES or 2 GiB. */
  maxDownloadBytes?: number;
  /** A download that connects or delivers nothing for this long (ms) fails; default $IMGPIPE_DOWNLOAD_TIMEOUT_MS or 30 s. */
  downloadTimeoutMs?: number;
  /** TF.js layers models run on ONNX Runtime, converted, when every layer converts (default); false keeps TF.js (fine-tuning). */
  convertTfjs?: boolean;
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
