import type { Tf } from '@imgpipe/engines';
import { registerWasmConvGradFastPaths } from './wasm-conv-grad-fast-paths.js';
import { registerWasmDepthwiseGradKernels } from './wasm-depthwise-grad-kernels.js';
import { registerWasmFastKernels } from './wasm-fast-kernels.js';
import { registerWasmGradKernels } from './wasm-grad-kernels.js';
import { registerWasmTrainingKernels } from './wasm-training-kernels.js';

/**
 * Register the kernels that training a conv backbone needs on TF.js WebAssembly (for --fine-tune): the gradient
 * kernels wasm lacks, faster replacements for the stock kernels training shapes are slow in (Tile, Sum, Minimum, ...),
 * and imgpipe's fused training kernels (fuseTrainingLayers). Only train's fine-tuning calls it, once per thread that
 * fine-tunes (each set registers once), so serve, eval-model and head training run on TF.js's stock kernels.
 * A no-op unless the wasm backend is selected.
 */
export function registerTrainingKernels(tf: Tf): void {
  if (tf.getBackend() !== 'wasm') return;
  registerWasmGradKernels(tf);
  registerWasmDepthwiseGradKernels(tf);
  registerWasmFastKernels(tf);
  registerWasmConvGradFastPaths(tf);
  registerWasmTrainingKernels(tf);
}
