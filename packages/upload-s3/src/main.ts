import { main } from '@imgpipe/kit';
import { uploadS3Cli } from './cli.js';

await main(uploadS3Cli);
