export { evalModelCli } from './cli.js';
export { runEvalModel, type EvalModelOptions, type EvalModelOutcome } from './eval-model.js';
export { EVAL_FORMAT, PLOT_FILES, type EvalResult, type WorstItem } from './eval-result.js';
export * from './metrics.js';
