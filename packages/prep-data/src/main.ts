import { main } from '@imgpipe/core';
import { prepDataCli } from './cli.js';

await main(prepDataCli);
