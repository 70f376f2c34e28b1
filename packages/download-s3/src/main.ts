import { main } from '@imgpipe/core';
import { downloadS3Cli } from './cli.js';

await main(downloadS3Cli);
