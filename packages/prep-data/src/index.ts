export { prepDataCli } from './cli.js';
