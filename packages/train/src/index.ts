export { trainCli } from './cli.js';
export { runTrain, type TrainOptions, type TrainResult } from './train.js';
export { planTrials, gridOf, describeParams, type SearchSpace, type Strategy, type Trial } from './sweep.js';
export { runTrial, pickBest, isBetter, type TrialFeatures } from './trial.js';
export { fineTune, checkFineTunable, type BatchNormStatistics, type FineTuneMode, type FineTuneSettings, type FineTuneResult } from './fine-tune.js';
export { planRun, planShards, readPlan, PLAN_FILE, type RunPlan, type ShardPart, type PlanOptions } from './task-plan.js';
export { extractShard } from './task-extract.js';
export { runTrialTask } from './task-trial.js';
export { finishTask } from './task-finish.js';
