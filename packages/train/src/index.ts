export { trainCli } from './cli.js';
export { runTrain, type TrainOptions } from './train.js';
export type { BatchNormStatistics, FineTuneMode } from './fine-tune/fine-tune.js';
