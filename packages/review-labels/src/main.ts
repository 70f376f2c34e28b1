import { main } from '@imgpipe/kit';
import { reviewLabelsCli } from './cli.js';

await main(reviewLabelsCli);
