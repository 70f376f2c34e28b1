// The train bin with test hooks injected, for tests that need a real process to fail a trial or to be killed
// mid-sweep: IMGPIPE_TEST_FAIL_TRIALS (trial ids that fail as a crash would) and IMGPIPE_TEST_EPOCH_DELAY_MS
// (a pause after each epoch). Only tests run this file; the production bin reads no such variable.
import { main } from '@imgpipe/kit';
import { createTrainCli } from './cli.js';

const { IMGPIPE_TEST_FAIL_TRIALS: failTrials, IMGPIPE_TEST_EPOCH_DELAY_MS: epochDelayMs } = process.env;
await main(
  createTrainCli({
    ...(failTrials ? { failTrials: new Set(failTrials.split(',')) } : {}),
    ...(epochDelayMs ? { epochDelayMs: Number(epochDelayMs) } : {}),
  }),
);
