export { registerTrainingKernels } from './register-training-kernels.js';
export { freezeBatchNormStatistics, fuseTrainingLayers, type FusedLayers } from './training-layers.js';
