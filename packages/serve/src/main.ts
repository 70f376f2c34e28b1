import { main } from '@imgpipe/kit';
import { serveCli } from './cli.js';

await main(serveCli);
