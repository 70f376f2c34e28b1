export { evalModelCli } from './cli.js';
