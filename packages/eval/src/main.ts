import { main } from '@imgpipe/kit';
import { evalModelCli } from './cli.js';

await main(evalModelCli);
