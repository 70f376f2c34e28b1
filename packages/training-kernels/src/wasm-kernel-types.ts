import type { TensorInfo } from '@tensorflow/tfjs-core';

/** The parts of tfjs-backend-wasm's backend and of tfjs-core's conv info that imgpipe's wasm kernels use. */
export type WasmBackend = {
  disposeData(dataId: object): void;
  makeOutput(shape: number[], dtype: 'float32'): TensorInfo;
  typedArrayFromHeap(info: TensorInfo): Float32Array;
};

export type ConvInfo = {
  batchSize: number;
  inHeight: number;
  inWidth: number;
  inChannels: number;
  outHeight: number;
  outWidth: number;
  outChannels: number;
  filterHeight: number;
  filterWidth: number;
  strideHeight: number;
  strideWidth: number;
  dilationHeight: number;
  dilationWidth: number;
  padInfo: { top: number; left: number; bottom: number; right: number };
};
