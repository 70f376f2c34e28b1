import { resolve } from 'node:path';
import {
  exitCleanlyOnSignals,
  parseValue,
  resolveInputPointer,
  UsageError,
  writePointer,
  type CliContext,
  type ToolCli,
  type ValueSpec,
} from '@imgpipe/kit';
import type { TrainOptions } from './train-options.js';
import type { TrialHooks } from './trial-hooks.js';
import type { BatchNormStatistics, FineTuneMode } from './fine-tune/fine-tune-types.js';

/** Flags that may be lists although their config keys hold one value: the list is kept aside, the first value configures. */
const LIST_FLAGS = ['epochs', 'batch-size'] as const;

export const trainCli: ToolCli = createTrainCli();

export function createTrainCli(hooks: TrialHooks = {}): ToolCli {
  return {
    name: 'train',
    summary:
      'Sweep classifier heads over cached backbone features (the backbone runs once per image, not once per trial) ' +
      'and keep the best trial on the validation split. Writes a run directory (run.json, trials.jsonl, trials.csv, ' +
      'results.csv, model/) and prints one JSON pointer line on stdout.',
    packageJson: new URL('../package.json', import.meta.url),
    configKeys: [
      'train.epochs',
      'train.lr',
      'train.layer_size',
      'train.device',
      'train.hyper_param_runs',
      'train.strategy',
      'train.backbone',
      'train.seed',
      'data.batch_size',
    ],
    options: {
      data: { type: 'string', describe: 'Dataset directory (prep-data --out); default: the dataset pointer on stdin' },
      out: { type: 'string', default: 'runs/', describe: 'Directory that gets the new run directory' },
      dropout: {
        value: { type: 'number[]', min: 0, max: 1, exclusiveMax: true },
        default: '0.5',
        describe: 'Dropout rates to sweep, comma-separated',
      },
      patience: {
        value: { type: 'int', min: 1 },
        describe: 'Early stopping: stop a trial after this many epochs without a lower val loss, keeping its best epoch',
      },
      parallel: { value: { type: 'int', min: 1 }, describe: 'Trials trained at once (default: 1 on cpu/wasm, 3 on webgpu/cuda)' },
      'wait-lock': {
        value: { type: 'int', min: 0 },
        default: 0,
        describe: 'Seconds to wait for another train of the same command or run directory to finish (default: exit 75 at once)',
      },
      'max-failed-trials': {
        value: { type: 'int', min: 0 },
        describe: 'Stop the sweep (exit 1) when more trials than this fail (NaN loss, out of memory); default: no limit',
      },
      resume: {
        type: 'string',
        describe:
          'Finish this interrupted run directory: its finished trials are kept, the rest run (an unfinished run of the same command under --out is found without it)',
      },
      'fine-tune': {
        type: 'string',
        describe:
          'After the sweep, train a TF.js layers backbone end to end with the best head (the sweep still extracts on ONNX Runtime): ' +
          "bn = only its BatchNormalization layers' gamma and beta (cheapest, safest: small data sets, hundreds to a few thousand images); " +
          'last:N = its last N layers with weights up to the feature layer, conv kernels included, the rest frozen (a few thousand ' +
          'images or more; on MobileNet v1 a block is 4 such layers: depthwise, BN, pointwise, BN); all = every backbone weight (the ' +
          'default when the flag has no value; large data sets, tens of thousands of images, else it overfits). BatchNormalization ' +
          'keeps its moving statistics (inference mode, --fine-tune-bn-statistics). MUCH slower than the sweep (the backbone runs ' +
          'forward and backward on every training image, each epoch); kept only if val accuracy does not drop. ONNX backbones: usage error',
      },
      'fine-tune-bn-statistics': {
        type: 'string',
        choices: ['frozen', 'update'],
        default: 'frozen',
        describe:
          "frozen: BatchNormalization normalises with its moving statistics while fine-tuning and never changes them (the usual recipe); update: with each batch's statistics, which small batches make noisy",
      },
      'fine-tune-epochs': {
        value: { type: 'int', min: 1 },
        default: 2,
        describe: 'Most epochs of --fine-tune; validated after each, the best epoch is kept',
      },
      'fine-tune-lr': {
        value: { type: 'number', min: 0, exclusiveMin: true },
        describe:
          "Peak Adam learning rate of --fine-tune, warmed up to over the first tenth of the steps, then decayed along a cosine; default: the best trial's lr / 10",
      },
      'fine-tune-patience': {
        value: { type: 'int', min: 1 },
        describe:
          'Stop --fine-tune after this many epochs without a better val accuracy (the best epoch is kept either way); default: run every epoch',
      },
      'fine-tune-workers': {
        value: { type: 'int', min: 1 },
        describe:
          'Worker threads sharing each --fine-tune batch on wasm (default: one per CPU thread, at most the batch size; recorded in run.json, the same count reruns identically)',
      },
      augment: {
        type: 'string',
        choices: ['none', 'flip'],
        default: 'none',
        describe:
          'flip: also train the heads on the features of horizontally mirrored training images (one more backbone pass over the train split, cached)',
      },
      'feature-layer': {
        type: 'string',
        describe: "Backbone layer (TF.js) or value (ONNX) whose output are the features; default: the backbone's pooled output",
      },
      preprocess: {
        type: 'string',
        choices: ['torch', 'tf', 'caffe', 'efficientnet-lite', 'none'],
        describe: 'Pixel normalisation the backbone expects; default: what the backbone records',
      },
      'cache-dir': { type: 'string', describe: 'Cache for backbones and features (default $IMGPIPE_CACHE_DIR or ~/.cache/imgpipe)' },
      'list-devices': { type: 'boolean', default: false, describe: 'Print the devices and whether each is available, then exit' },
      'list-backbones': {
        type: 'boolean',
        default: false,
        describe:
          "Print the built-in backbones (resnet50: the seed's model, the default; resnet50-int8 or mobilenetv2: less CPU time; " +
          'efficientnet-lite4: the most accurate) with size, input, feature size, ImageNet top-1, whether cached, and sources; then exit',
      },
      task: {
        type: 'string',
        choices: ['plan', 'extract', 'trial', 'finish'],
        describe:
          'Run the sweep as separate tasks over a shared run directory (Slurm job arrays, Kubernetes Indexed Jobs): plan (takes ' +
          'the sweep flags, writes <out>/<run>/plan.json, prints the run pointer), extract --index K, trial --index K, finish ' +
          '(writes model/ and prints the pointer a plain train prints). Each task is idempotent; see docs/scale-out.md',
      },
      run: { type: 'string', describe: 'The planned run directory (--task extract, trial, finish)' },
      index: {
        value: { type: 'int', min: 0 },
        describe: 'Which extraction shard or trial, from 0 (--task extract, trial; e.g. $SLURM_ARRAY_TASK_ID, $JOB_COMPLETION_INDEX)',
      },
      shards: {
        value: { type: 'int', min: 1 },
        default: 1,
        describe: 'Number of extraction shards (tasks) the plan cuts the train and val images into (--task plan)',
      },
      'run-id': { type: 'string', describe: 'Name of the run directory under --out (--task plan); default: a new timestamped one' },
    },
    examples: [
      ['prep-data --csv images.csv --out prep/ | $0 --out runs/', "The seed's 3x3 grid (lr x layer size) on the prepared dataset"],
      ['$0 --data prep/ --lr 0.001,0.01 --layer-size 256 --dropout 0.3,0.5 --epochs 3,5', 'A custom grid'],
      ['$0 --data prep/ --strategy random --hyper-param-runs 4 --seed 7', 'Four random distinct combinations'],
      ['$0 --data prep/ --resume runs/20261127-0512-ab12', 'Finish an interrupted sweep'],
      [
        '$0 --data prep/ --backbone mobilenet/model.json --fine-tune bn --fine-tune-epochs 1',
        "Then fine-tune a TF.js backbone's BatchNorm layers (slow)",
      ],
      ['$0 --data prep/ --augment flip', 'Train the heads on every image and its mirror'],
      ['$0 --list-devices', 'Which devices work here'],
      ['$0 --list-backbones', 'The built-in backbones, their sources and whether they are cached'],
      ['$0 --data prep/ --backbone mobilenetv2', 'A faster built-in backbone than the default resnet50'],
      ['$0 --task plan --data prep/ --out runs/ --run-id sweep1 --shards 4', 'Plan a sweep as tasks (then: extract 0..3, each trial, finish)'],
      ['$0 --task trial --run runs/sweep1 --index 2', 'Train the third trial of a planned run'],
    ],
    configure: (argv) =>
      argv
        .describe('epochs', 'Epochs per trial; a comma-separated list sweeps them. [train.epochs; default: 3]')
        .describe(
          'batch-size',
          'Head batch size; a comma-separated list sweeps them (the first is also the feature-extraction batch). [data.batch_size; default: 32]',
        )
        .middleware((args) => {
          for (const flag of LIST_FLAGS) {
            // Given more than once: the union, as for the other list flags (kit's parseValue).
            const value = Array.isArray(args[flag]) ? (args[flag] as unknown[]).join(',') : args[flag];
            if (typeof value === 'string' && value.includes(',')) {
              args[`${flag}-list`] = value;
              args[flag] = value.split(',')[0]!.trim();
            }
          }
        }),
    async run(args, context) {
      if (args['list-backbones']) {
        const { formatBuiltinList } = await import('@imgpipe/engines/backbone-builtin');
        context.stdout.write(await formatBuiltinList(args['cache-dir'] ? resolve(context.cwd, String(args['cache-dir'])) : undefined));
        return;
      }
      if (args['list-devices']) {
        const { formatDeviceList, listDevices } = await import('@imgpipe/engines');
        context.stdout.write(formatDeviceList(await listDevices()));
        return;
      }
      if (args.task !== undefined) {
        exitCleanlyOnSignals();
        const { runTaskCommand } = await import('./tasks/task-command.js');
        await runTaskCommand(args, context, () => trainOptions(args, context), hooks);
        return;
      }
      const options = await trainOptions(args, context);
      exitCleanlyOnSignals();
      const { runTrain } = await import('./train.js');
      const result = await runTrain(options, hooks);
      writePointer(context.stdout, result.pointer);
    },
  };
}

/** --epochs and --batch-size sweep lists although their config keys hold one value. */
function list(raw: unknown, flag: string): number[] {
  const spec: ValueSpec = { type: 'int[]', min: 1 };
  const parsed = parseValue(raw, spec, flag);
  if ('problem' in parsed) throw new UsageError(parsed.problem);
  return parsed.value as number[];
}

function fineTuneOptions(args: Record<string, unknown>): Pick<TrainOptions, 'fineTune'> {
  const raw = args['fine-tune'];
  if (raw === undefined || raw === 'none' || raw === 'false') {
    for (const flag of ['fine-tune-lr', 'fine-tune-workers', 'fine-tune-patience'])
      if (args[flag] !== undefined) throw new UsageError(`--${flag} needs --fine-tune all|bn|last:N`);
    return {};
  }
  const mode = raw === '' || raw === 'true' ? 'all' : String(raw);
  if (mode !== 'all' && mode !== 'bn' && !/^last:[1-9]\d*$/.test(mode))
    throw new UsageError(`expected --fine-tune to be all, bn, last:N (N >= 1) or none, got '${String(raw)}'`);
  const epochs = args['fine-tune-epochs'] as number;
  const lr = args['fine-tune-lr'] as number | undefined;
  const workers = args['fine-tune-workers'] as number | undefined;
  const patience = args['fine-tune-patience'] as number | undefined;
  const bnStatistics = args['fine-tune-bn-statistics'] as BatchNormStatistics;
  return {
    fineTune: {
      mode: mode as FineTuneMode,
      bnStatistics,
      epochs,
      ...(lr === undefined ? {} : { lr }),
      ...(workers === undefined ? {} : { workers }),
      ...(patience === undefined ? {} : { patience }),
    },
  };
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
  const epochs = args['epochs-list'] === undefined ? [train.epochs] : list(args['epochs-list'], '--epochs');
  const batchSizes = args['batch-size-list'] === undefined ? [data.batch_size] : list(args['batch-size-list'], '--batch-size');
  return {
    dataDir: resolve(context.cwd, pointer.path),
    out: resolve(context.cwd, String(args.out)),
    ...(args.resume ? { resume: resolve(context.cwd, String(args.resume)) } : {}),
    waitLockSeconds: args['wait-lock'] as number,
    space: {
      lr: train.lr,
      layer_size: train.layer_size,
      dropout: args.dropout as number[],
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
    ...(args.augment === 'flip' ? { augment: 'flip' as const } : {}),
    ...(args.patience === undefined ? {} : { patience: args.patience as number }),
    ...(args.parallel === undefined ? {} : { parallel: args.parallel as number }),
    ...(args['max-failed-trials'] === undefined ? {} : { maxFailedTrials: args['max-failed-trials'] as number }),
    ...fineTuneOptions(args),
    projectName: config.project.name,
    log: context.log,
  };
}
