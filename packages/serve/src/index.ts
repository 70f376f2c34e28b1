export { serveCli } from './cli.js';
