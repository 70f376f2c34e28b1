export { trainCli } from './cli.js';
export { runTrain, type TrainOptions, type TrainResult } from './train.js';
export { planTrials, gridOf, describeParams, type SearchSpace, type Strategy, type Trial, type TrialParams } from './sweep.js';
export { runTrial, pickBest, isBetter, type TrialRecord, type EpochRecord, type TrialFeatures } from './trial.js';
export { RESULT_COLUMNS, RUN_FILE, TRIALS_CSV, TRIALS_JSONL, RESULTS_CSV, readFinishedTrials, type RunJson } from './run-dir.js';
export { fineTune, checkFineTunable, type FineTuneMode, type FineTuneSettings, type FineTuneResult } from './fine-tune.js';
