export { uploadS3Cli } from './cli.js';
