export { prepDataCli } from './cli.js';
export { runPrepData, type PrepDataOptions, type PrepDataResult, type RejectedRow } from './prep.js';
