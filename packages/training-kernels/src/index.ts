export { registerTrainingKernels } from './register-training-kernels.js';
export { freezeBatchNormStatistics, fuseTrainingLayers } from './training-layers.js';
