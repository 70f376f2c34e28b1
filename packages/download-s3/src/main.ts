import { main } from '@imgpipe/kit';
import { downloadS3Cli } from './cli.js';

await main(downloadS3Cli);
