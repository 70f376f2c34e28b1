export { downloadS3Cli } from './cli.js';
