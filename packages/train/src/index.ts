export { trainCli } from './cli.js';
export { runTrain, type TrainOptions, type TrainResult } from './train.js';
export { planTrials, gridOf, describeParams, type SearchSpace, type Strategy, type Trial } from './sweep/sweep.js';
export { runTrial, pickBest, isBetter, type TrialFeatures } from './sweep/trial.js';
export { fineTune, checkFineTunable, type BatchNormStatistics, type FineTuneMode, type FineTuneSettings, type FineTuneResult } from './fine-tune/fine-tune.js';
export { planRun, planShards, readPlan, PLAN_FILE, type RunPlan, type ShardPart, type PlanOptions } from './tasks/task-plan.js';
export { extractShard } from './tasks/task-extract.js';
export { runTrialTask } from './tasks/task-trial.js';
export { finishTask } from './tasks/task-finish.js';
