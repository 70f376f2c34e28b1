import { resolve } from 'node:path';
import { exitCleanlyOnSignals, integerFlag, resolveInputPointer, UsageError, writePointer, type CliContext, type ToolCli } from '@imgpipe/kit';
import type { TrainOptions } from './train.js';

/** Flags that may be lists although their config keys hold one value: the list is kept aside, the first value configures. */
const LIST_FLAGS = ['epochs', 'batch-size'] as const;

export const trainCli: ToolCli = {
  name: 'train',
  summary:
    'Sweep classifier heads over cached backbone features (the backbone runs once per image, not once per trial) ' +
    'and keep the best trial on the validation split. Writes a run directory (run.json, trials.jsonl, trials.csv, ' +
    'results.csv, model/) and prints one JSON pointer line on stdout.',
  configKeys: ['train.epochs', 'train.lr', 'train.layer_size', 'train.device', 'train.hyper_param_runs', 'train.strategy', 'train.backbone', 'train.seed', 'data.batch_size'],
  options: {
    data: { type: 'string', describe: 'Dataset directory (prep-data --out); default: the dataset pointer on stdin' },
    out: { type: 'string', default: 'runs/', describe: 'Directory that gets the new run directory' },
    dropout: { type: 'string', default: '0.5', describe: 'Dropout rates to sweep, comma-separated, each in [0, 1)' },
    patience: { type: 'string', describe: 'Early stopping: stop a trial after this many epochs without a lower val loss, keeping its best epoch' },
    parallel: { type: 'string', describe: 'Trials trained at once (default: 1 on cpu/wasm, 3 on webgpu/cuda)' },
    'max-failed-trials': { type: 'string', describe: 'Stop the sweep (exit 1) when more trials than this fail (NaN loss, out of memory); default: no limit' },
    'wait-lock': { type: 'string', default: '0', describe: 'Seconds to wait for another train of the same command or run directory to finish (default: exit 75 at once)' },
    resume: { type: 'string', describe: 'Finish this interrupted run directory: its finished trials are kept, the rest run (an unfinished run of the same command under --out is found without it)' },
    'fine-tune': {
      type: 'string',
      describe:
        'After the sweep, train a TF.js layers backbone end to end with the best head: all = every backbone weight (the default ' +
        'when the flag has no value), bn = only its BatchNormalization layers. MUCH slower than the sweep (the backbone runs ' +
        'forward and backward on every training image, each epoch); kept only if val accuracy does not drop. ONNX backbones: usage error',
    },
    'fine-tune-epochs': { type: 'string', default: '2', describe: 'Epochs of --fine-tune' },
    'fine-tune-lr': { type: 'string', describe: 'Adam learning rate of --fine-tune; default: the best trial\'s lr / 10' },
    'feature-layer': { type: 'string', describe: 'Backbone layer (TF.js) or value (ONNX) whose output are the features; default: the backbone\'s pooled output' },
    preprocess: { type: 'string', choices: ['torch', 'tf', 'caffe', 'none'], describe: 'Pixel normalisation the backbone expects; default: what the backbone records' },
    'cache-dir': { type: 'string', describe: 'Cache for backbones and features (default $IMGPIPE_CACHE_DIR or ~/.cache/imgpipe)' },
    'list-devices': { type: 'boolean', default: false, describe: 'Print the devices and whether each is available, then exit' },
  },
  examples: [
    ['prep-data --csv images.csv --out prep/ | $0 --out runs/', 'The seed\'s 3x3 grid (lr x layer size) on the prepared dataset'],
    ['$0 --data prep/ --lr 0.001,0.01 --layer-size 256 --dropout 0.3,0.5 --epochs 3,5', 'A custom grid'],
    ['$0 --data prep/ --strategy random --hyper-param-runs 4 --seed 7', 'Four random distinct combinations'],
    ['$0 --data prep/ --resume runs/20261127-0512-ab12', 'Finish an interrupted sweep'],
    ['$0 --data prep/ --backbone mobilenet/model.json --fine-tune bn --fine-tune-epochs 1', 'Then fine-tune a TF.js backbone\'s BatchNorm layers (slow)'],
    ['$0 --list-devices', 'Which devices work here'],
  ],
  configure: (argv) =>
    argv
      .describe('epochs', 'Epochs per trial; a comma-separated list sweeps them. [train.epochs; default: 3]')
      .describe('batch-size', 'Head batch size; a comma-separated list sweeps them (the first is also the feature-extraction batch). [data.batch_size; default: 32]')
      .middleware((args) => {
        for (const flag of LIST_FLAGS) {
          const value = args[flag];
          if (typeof value === 'string' && value.includes(',')) {
            args[`${flag}-list`] = value;
            args[flag] = value.split(',')[0]!.trim();
          }
        }
      }),
  async run(args, context) {
    if (args['list-devices']) {
      const { formatDeviceList, listDevices } = await import('@imgpipe/engines');
      context.stdout.write(formatDeviceList(await listDevices()));
      return;
    }
    const options = await trainOptions(args, context);
    exitCleanlyOnSignals();
    const { runTrain } = await import('./train.js');
    const result = await runTrain(options);
    writePointer(context.stdout, result.pointer);
  },
};

function list(raw: unknown, flag: string, kind: 'int' | 'number', check: (n: number) => boolean, expected: string): number[] {
  const values = String(raw).split(',').map((v) => v.trim());
  const numbers = values.map((v) => (v === '' ? Number.NaN : Number(v)));
  if (numbers.length === 0 || numbers.some((n) => !Number.isFinite(n) || (kind === 'int' && !Number.isInteger(n)) || !check(n))) {
    throw new UsageError(`expected ${flag} to be a comma-separated list of ${expected}, got '${String(raw)}'`);
  }
  return numbers;
}

function fineTuneOptions(args: Record<string, unknown>): Pick<TrainOptions, 'fineTune'> {
  const raw = args['fine-tune'];
  if (raw === undefined || raw === 'none' || raw === 'false') {
    if (args['fine-tune-lr'] !== undefined) throw new UsageError('--fine-tune-lr needs --fine-tune all|bn');
    return {};
  }
  const mode = raw === '' || raw === 'true' ? 'all' : String(raw);
  if (mode !== 'all' && mode !== 'bn') throw new UsageError(`expected --fine-tune to be all, bn or none, got '${String(raw)}'`);
  const epochs = integerFlag(args, 'fine-tune-epochs', 1);
  let lr: number | undefined;
  if (args['fine-tune-lr'] !== undefined) {
    lr = Number(args['fine-tune-lr']);
    if (args['fine-tune-lr'] === '' || !(lr > 0 && Number.isFinite(lr))) throw new UsageError(`expected --fine-tune-lr to be a positive number, got '${String(args['fine-tune-lr'])}'`);
  }
  return { fineTune: { mode, epochs, ...(lr === undefined ? {} : { lr }) } };
}

async function trainOptions(args: Record<string, unknown>, context: CliContext): Promise<TrainOptions> {
  const { config } = context.settings;
  const { train, data } = config;
  const pointer = await resolveInputPointer({
    flag: args.data as string | undefined,
    flagName: '--data',
    kinds: ['dataset'],
    stdin: context.stdin as NodeJS.ReadStream,
  });
  if (!pointer.path) throw new UsageError('the dataset pointer on stdin has no path; pass --data DIR');
  const epochs = args['epochs-list'] === undefined ? [train.epochs] : list(args['epochs-list'], '--epochs', 'int', (n) => n >= 1, 'integers >= 1');
  const batchSizes = args['batch-size-list'] === undefined ? [data.batch_size] : list(args['batch-size-list'], '--batch-size', 'int', (n) => n >= 1, 'integers >= 1');
  const env = context.env;
  return {
    dataDir: resolve(context.cwd, pointer.path),
    out: resolve(context.cwd, String(args.out)),
    ...(args.resume ? { resume: resolve(context.cwd, String(args.resume)) } : {}),
    waitLockSeconds: integerFlag(args, 'wait-lock', 0),
    space: {
      lr: train.lr,
      layer_size: train.layer_size,
      dropout: list(args.dropout, '--dropout', 'number', (n) => n >= 0 && n < 1, 'numbers in [0, 1)'),
      batch_size: batchSizes,
      epochs,
    },
    strategy: train.strategy as 'grid' | 'random',
    runs: train.hyper_param_runs,
    seed: train.seed,
    device: train.device as TrainOptions['device'],
    backbone: train.backbone,
    ...(args['feature-layer'] ? { featureLayer: String(args['feature-layer']) } : {}),
    ...(args.preprocess ? { preprocess: String(args.preprocess) } : {}),
    ...(args['cache-dir'] ? { cacheDir: resolve(context.cwd, String(args['cache-dir'])) } : {}),
    extractBatchSize: batchSizes[0]!,
    ...(args.patience === undefined ? {} : { patience: integerFlag(args, 'patience', 1) }),
    ...(args.parallel === undefined ? {} : { parallel: integerFlag(args, 'parallel', 1) }),
    ...(args['max-failed-trials'] === undefined ? {} : { maxFailedTrials: integerFlag(args, 'max-failed-trials', 0) }),
    ...fineTuneOptions(args),
    projectName: config.project.name,
    log: context.log,
    // Test hooks for the end-to-end tests: fail these trial ids as a crash would; pause after each epoch.
    ...(env.IMGPIPE_TEST_FAIL_TRIALS ? { failTrials: new Set(env.IMGPIPE_TEST_FAIL_TRIALS.split(',')) } : {}),
    ...(env.IMGPIPE_TEST_EPOCH_DELAY_MS ? { epochDelayMs: Number(env.IMGPIPE_TEST_EPOCH_DELAY_MS) } : {}),
  };
}
