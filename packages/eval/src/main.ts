import { main } from '@imgpipe/core';
import { evalModelCli } from './cli.js';

await main(evalModelCli);
