import { resolve } from 'node:path';
import { exitCleanlyOnSignals, resolveInputPointer, UsageError, writePointer, type ToolCli } from '@imgpipe/kit';

export const reviewLabelsCli: ToolCli = {
  name: 'review-labels',
  summary:
    "Find the images of a run's dataset whose labels are likely wrong (confident learning on out-of-sample " +
    'probabilities of K heads trained on the cached backbone features), the outliers that fit no class and the ' +
    'near-duplicates across splits: writes label-issues.csv and label-review.html (keep / relabel / drop, exported ' +
    'as label-decisions.csv for prep-data --decisions) in the run directory and prints a label-review pointer.',
  packageJson: new URL('../package.json', import.meta.url),
  configKeys: ['train.device', 'data.batch_size'],
  options: {
    run: { type: 'string', describe: 'Run directory written by train (default: the run pointer on stdin)' },
    data: { type: 'string', describe: "Dataset directory (default: the one the run's run.json names)" },
    folds: {
      value: { type: 'int', min: 2 },
      default: 5,
      describe: "Heads trained, each on all images but one fold, with the run's best hyper-parameters (seeded by the run's seed)",
    },
    neighbours: { value: { type: 'int', min: 1 }, default: 10, describe: 'Nearest neighbours per class for the outlier distance' },
    'outlier-z': {
      value: { type: 'number' },
      default: 4,
      describe: "An image is an outlier when even its nearest class is this many robust SDs farther than that class's own images are",
    },
    'duplicate-threshold': {
      value: { type: 'number', min: 0, max: 1 },
      default: 0.99,
      describe: 'Feature cosine at or above which images of different splits are near-duplicates',
    },
    'page-limit': {
      value: { type: 'int', min: 0 },
      default: 500,
      describe: 'Issues shown on label-review.html, most suspicious first (label-issues.csv lists all)',
    },
    'cache-dir': { type: 'string', describe: 'Cache for backbones and features, as given to train (default $IMGPIPE_CACHE_DIR or ~/.cache/imgpipe)' },
    'wait-lock': {
      value: { type: 'int', min: 0 },
      default: 0,
      describe: 'Seconds to wait for another tool writing the run directory (default: exit 75 at once)',
    },
  },
  examples: [
    ['train --data prep/ --out runs/ | $0', 'review the labels of the dataset train just used'],
    ['$0 --run runs/20261127-0512-ab12 --folds 10', 'ten folds'],
    ['prep-data --csv images.csv --decisions label-decisions.csv --out prep/', 'then apply what was decided on label-review.html'],
  ],
  async run(args, context) {
    const pointer = await resolveInputPointer({
      flag: args.run as string | undefined,
      flagName: '--run',
      kinds: ['run', 'label-review'],
      stdin: context.stdin as NodeJS.ReadStream,
    });
    if (typeof pointer.path !== 'string') throw new UsageError(`the ${pointer.kind} pointer on stdin has no path`);
    exitCleanlyOnSignals();
    const [{ runReviewLabels }, { parseDevice }] = await Promise.all([import('./review-labels.js'), import('@imgpipe/engines')]);
    const { config } = context.settings;
    const result = await runReviewLabels({
      runDir: resolve(context.cwd, pointer.path),
      dataDir: typeof args.data === 'string' ? resolve(context.cwd, args.data) : undefined,
      folds: args.folds as number,
      neighbours: args.neighbours as number,
      outlierZ: args['outlier-z'] as number,
      duplicateThreshold: args['duplicate-threshold'] as number,
      pageLimit: args['page-limit'] as number,
      device: parseDevice(config.train.device),
      batchSize: config.data.batch_size,
      cacheDir: typeof args['cache-dir'] === 'string' ? resolve(context.cwd, args['cache-dir']) : undefined,
      cwd: context.cwd,
      waitLockSeconds: args['wait-lock'] as number,
      log: context.log,
    });
    writePointer(context.stdout, result.pointer);
  },
};
