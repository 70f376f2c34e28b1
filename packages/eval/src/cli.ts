import { resolve } from 'node:path';
import { resolveInputPointer, UsageError, writePointer, type ToolCli } from '@imgpipe/kit';

export const evalModelCli: ToolCli = {
  name: 'eval-model',
  summary:
    "Evaluate a run's best model on the test split of its dataset (which train never saw): writes eval.json, predictions.csv, " +
    'plots/*.png and report.html in the run directory, adds test metrics to model/card.json and results.csv, and prints ' +
    'the run pointer with test_accuracy and test_loss.',
  packageJson: new URL('../package.json', import.meta.url),
  configKeys: ['train.device', 'data.batch_size'],
  options: {
    run: { type: 'string', describe: 'Run directory written by train (default: the run pointer on stdin)' },
    model: { type: 'string', describe: 'Model directory to evaluate instead of <run>/model' },
    data: { type: 'string', describe: 'Dataset directory (default: the one the run or the model card names)' },
    out: { type: 'string', describe: 'Where eval files go when --model is not inside a run directory' },
    'min-accuracy': {
      value: { type: 'number', min: 0, max: 1 },
      describe: 'Quality gate: exit 1 when test accuracy is below this, after writing eval.json',
    },
    tta: {
      type: 'string',
      choices: ['none', 'flip'],
      describe:
        "Test-time augmentation: flip averages the softmax of each image and its mirror (twice the backbone work); default: the card's tta, else none. Recorded in eval.json, results.csv and the card",
    },
    worst: { value: { type: 'int', min: 0 }, default: 16, describe: 'How many of the most confidently wrong test images to list and draw' },
  },
  examples: [
    ['train --data prep/ --out runs/ | eval-model --min-accuracy 0.9 | upload-s3', 'evaluate the run train just made; stop the pipe below 90%'],
    ['eval-model --run runs/20261127-0512-ab12', 'evaluate a run directory'],
    ['eval-model --model model/ --data prep/ --out eval/', 'evaluate a model directory on a dataset'],
    ['eval-model --run runs/20261127-0512-ab12 --tta flip', 'average each test image with its mirror'],
  ],
  async run(args, context) {
    const worst = args.worst as number;
    const minAccuracy = args['min-accuracy'] as number | undefined;
    if (args.out !== undefined && args.model === undefined)
      throw new UsageError('--out goes with --model (with a run, the files are written in the run directory)');
    let runDir = args.run as string | undefined;
    let modelDir = args.model as string | undefined;
    if (modelDir?.startsWith('s3://'))
      throw new UsageError(
        `--model ${modelDir}: eval-model reads a local model directory; copy it first (aws s3 cp --recursive ${modelDir} model/) and pass the directory`,
      );
    if (!modelDir) {
      const pointer = await resolveInputPointer({
        flag: runDir,
        flagName: '--run (or --model DIR --data DIR)',
        kinds: ['run', 'model', 'label-review'],
        stdin: context.stdin as NodeJS.ReadStream,
      });
      if (typeof pointer.path !== 'string') throw new UsageError(`the ${pointer.kind} pointer on stdin has no path`);
      if (pointer.kind === 'model') modelDir = pointer.path;
      // review-labels' pointer names the run it reviewed: train | review-labels | eval-model.
      else {
        runDir = pointer.path;
        if (typeof pointer.best === 'string') modelDir = pointer.best;
      }
    }
    const [{ runEvalModel }, { parseDevice }] = await Promise.all([import('./eval-model.js'), import('@imgpipe/engines')]);
    const { config } = context.settings;
    const path = (value: unknown) => (typeof value === 'string' ? resolve(context.cwd, value) : undefined);
    const outcome = await runEvalModel({
      runDir: path(runDir),
      modelDir: path(modelDir),
      dataDir: path(args.data),
      outDir: path(args.out),
      device: parseDevice(config.train.device),
      batchSize: config.data.batch_size,
      worst,
      minAccuracy,
      ...(args.tta === undefined ? {} : { tta: args.tta as 'none' | 'flip' }),
      log: context.log,
    });
    writePointer(context.stdout, outcome.pointer);
  },
};
