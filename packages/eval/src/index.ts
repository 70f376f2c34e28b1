export { evalModelCli } from './cli.js';
export { runEvalModel } from './eval-model.js';
export type { EvalResult } from './eval-result.js';
export * from './metrics.js';
