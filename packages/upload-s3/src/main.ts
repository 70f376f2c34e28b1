import { main } from '@imgpipe/core';
import { uploadS3Cli } from './cli.js';

await main(uploadS3Cli);
