import { main } from '@imgpipe/kit';
import { prepDataCli } from './cli.js';

await main(prepDataCli);
