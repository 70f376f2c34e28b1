import { main } from '@imgpipe/kit';
import { trainCli } from './cli.js';

await main(trainCli);
