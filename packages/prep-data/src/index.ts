export { prepDataCli } from './cli.js';
export { runPrepData } from './prep.js';
