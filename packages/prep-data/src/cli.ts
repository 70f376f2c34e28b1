import { readAll, UsageError, writePointer, type CliContext, type ToolCli, exitCleanlyOnSignals } from '@imgpipe/kit';

export const prepDataCli: ToolCli = {
  name: 'prep-data',
  summary:
    'Decode, resize and split the images of a CSV (with local_image, as download-s3 prints it) into a dataset ' +
    'directory: per split one uint8 NHWC pixel file and a CSV of its rows, manifest.json and rejected.csv. ' +
    'Prints one JSON pointer line on stdout.',
  packageJson: new URL('../package.json', import.meta.url),
  configKeys: ['data.images_csv', 'data.img_dimensions', 'data.train_pct', 'data.val_pct', 'data.test_pct', 'data.seed'],
  options: {
    out: { type: 'string', default: 'prep', describe: 'Dataset directory to write (built beside it, then renamed into place)' },
    fit: { type: 'string', choices: ['fill', 'cover'], default: 'fill', describe: 'fill: stretch to a square (the seed); cover: centre-crop' },
    'split-by': {
      type: 'string',
      choices: ['random', 'hash'],
      default: 'random',
      describe: 'random: seeded, stratified, exact per-class counts; hash: by a hash of each key, stable when rows are added',
    },
    seed: { value: { type: 'int', min: 0 }, describe: 'Same as --split-seed' },
    'max-pixels': { value: { type: 'int', min: 1 }, describe: 'Reject images whose header declares more pixels (default 268402689)' },
    'max-rejected': { value: { type: 'int', min: 0 }, describe: 'Fail (exit 2) when more images than this are rejected (default: no limit)' },
    force: {
      type: 'boolean',
      default: false,
      describe: 'Rebuild even when --out already holds this dataset (only a directory prep-data made is ever replaced)',
    },
    'wait-lock': {
      value: { type: 'int', min: 0 },
      default: 0,
      describe: 'Seconds to wait for another build of the same --out to finish (default: exit 75 at once)',
    },
    concurrency: { value: { type: 'int', min: 1 }, describe: 'Threads decoding images (default: the number of cores)' },
    decisions: {
      type: 'string',
      describe:
        "Review decisions to apply (label-decisions.csv from review-labels' page): drop or relabel images, matched by content sha256; recorded in the manifest and rejected.csv, the CSV itself is never changed",
    },
  },
  examples: [
    ['download-s3 --csv s3://bucket/images.csv --dest data/ | $0 --out prep/', 'Prepare what download-s3 fetched'],
    ['$0 --csv images.csv --img-dimensions 224 --train-pct 0.8 --val-pct 0.1 --test-pct 0.1', 'From a CSV file'],
    ['$0 --csv images.csv --split-by hash --out prep/', 'Splits that stay put when rows are appended (cron)'],
    ['$0 --csv images.csv --decisions label-decisions.csv --out prep/', "Apply the decisions made on review-labels' page"],
  ],
  async run(args, context) {
    const { closeDecodeThreads, runPrepData, startDecodeThreads } = await import('./prep.js');
    // The threads start (a tenth of a second) while the CSV is read, or while the download before the pipe finishes.
    const decodeThreads = startDecodeThreads(args.concurrency as number | undefined);
    let options: Awaited<ReturnType<typeof cliOptions>>;
    try {
      options = await cliOptions(args, context);
    } catch (error) {
      await closeDecodeThreads(decodeThreads);
      throw error;
    }
    exitCleanlyOnSignals();
    const result = await runPrepData({ ...options, decodeThreads });
    writePointer(context.stdout, result.pointer);
  },
};

async function cliOptions(args: Record<string, unknown>, context: CliContext) {
  const { config, origin } = context.settings;
  const data = config.data;
  const seed = (args.seed as number | undefined) ?? data.seed;
  const csvFlag = origin['data.images_csv'] === 'flag' ? data.images_csv : undefined;
  const { csv, csvSource } = await readInput(csvFlag, data.images_csv, context);
  return {
    csv,
    csvSource,
    out: String(args.out),
    cwd: context.cwd,
    size: data.img_dimensions,
    fit: args.fit as 'fill' | 'cover',
    fractions: { train: data.train_pct, val: data.val_pct, test: data.test_pct },
    seed,
    splitBy: args['split-by'] as 'random' | 'hash',
    ...(args['max-pixels'] === undefined ? {} : { maxPixels: args['max-pixels'] as number }),
    ...(args['max-rejected'] === undefined ? {} : { maxRejected: args['max-rejected'] as number }),
    force: Boolean(args.force),
    waitLockSeconds: args['wait-lock'] as number,
    ...(args.concurrency === undefined ? {} : { concurrency: args.concurrency as number }),
    ...(typeof args.decisions === 'string' ? { decisions: await readDecisions(args.decisions, context.cwd) } : {}),
    log: context.log,
    stderr: context.stderr,
    quiet: context.log.quiet,
  };
}

/**
 * The CSV comes from --csv when given on the command line; otherwise from stdin when something is piped (so a
 * config file's data.images_csv, which names download-s3's S3 input, does not hide the pipe); otherwise from the
 * configured path.
 */
async function readInput(flag: string | undefined, configured: string, context: CliContext): Promise<{ csv: Buffer; csvSource: string }> {
  const stdin = context.stdin as NodeJS.ReadableStream & { isTTY?: boolean };
  const fromStdin = flag === '-' || (flag === undefined && (!stdin.isTTY || configured === '' || configured === '-'));
  if (fromStdin) {
    if (stdin.isTTY) throw new UsageError('no input: pass --csv FILE or pipe the images CSV (from download-s3) on stdin');
    return { csv: await readAll(stdin), csvSource: 'stdin' };
  }
  const path = flag ?? configured;
  if (path.startsWith('s3://')) {
    throw new UsageError(`--csv ${path}: prep-data reads a local CSV with local_image; run download-s3 --csv ${path} --dest DIR and pipe it in`);
  }
  const { readFile } = await import('node:fs/promises');
  const { resolve } = await import('node:path');
  try {
    return { csv: await readFile(resolve(context.cwd, path)), csvSource: path };
  } catch (error) {
    throw new UsageError(`--csv ${path}: cannot read the file (${(error as NodeJS.ErrnoException).code ?? error})`, { cause: error });
  }
}

async function readDecisions(path: string, cwd: string): Promise<{ text: Buffer; source: string }> {
  const { readFile } = await import('node:fs/promises');
  const { resolve } = await import('node:path');
  try {
    return { text: await readFile(resolve(cwd, path)), source: path };
  } catch (error) {
    throw new UsageError(`--decisions ${path}: cannot read the file (${(error as NodeJS.ErrnoException).code ?? error})`, { cause: error });
  }
}
