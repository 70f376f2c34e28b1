export { trainCli } from './cli.js';
