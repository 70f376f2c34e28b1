import { main } from '@imgpipe/core';
import { serveCli } from './cli.js';

await main(serveCli);
