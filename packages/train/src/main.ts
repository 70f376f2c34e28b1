import { main } from '@imgpipe/core';
import { trainCli } from './cli.js';

await main(trainCli);
