export { reviewLabelsCli } from './cli.js';
