import { exitCleanlyOnSignals, integerFlag, UsageError, type ToolCli } from '@imgpipe/kit';

export const downloadS3Cli: ToolCli = {
  name: 'download-s3',
  summary:
    'Download the images listed in a CSV (bucket,s3_image,category,label) from S3 into --dest; print the CSV with a ' +
    'local_image column on stdout. Files already present with the same content are skipped.',
  configKeys: ['data.images_csv', 'data.download_path', 'data.download_data', 'aws.bucket_name', 'aws.endpoint', 'aws.aws_default_region'],
  options: {
    concurrency: { type: 'number', default: 16, describe: 'Downloads in flight (and HTTP connections kept open)' },
    retries: { type: 'number', default: 5, describe: 'Retries per object on throttling, 5xx, resets, timeouts and stalled bodies' },
    'max-failures': { type: 'number', default: 0, describe: 'Failed rows tolerated before the exit code is non-zero' },
    failures: { type: 'string', describe: 'Write the failed rows with their reasons to this CSV' },
    out: { type: 'string', alias: 'o', describe: 'Write the CSV to this file (atomically) instead of stdout' },
    'stall-timeout': { type: 'number', default: 30, describe: 'Seconds without body data before a download is aborted and retried' },
    'wait-lock': { type: 'string', default: '0', describe: 'Seconds to wait for another download into the same --dest to finish (default: exit 75 at once)' },
  },
  examples: [
    ['download-s3 --csv s3://my-bucket/images.csv --dest data/ > images-local.csv', 'download the images a CSV on S3 lists'],
    ['download-s3 --csv images.csv --dest data/ --endpoint http://127.0.0.1:9000', 'from an S3-compatible store'],
    ['download-s3 --csv images-local.csv --no-download-data', 'only check that every local_image exists'],
  ],
  async run(args, context) {
    const { config } = context.settings;
    const csv = config.data.images_csv || (isTty(context.stdin) ? '' : '-');
    if (!csv) throw new UsageError("no input: pass --csv FILE, --csv - (stdin) or --csv s3://bucket/key.csv, or pipe the CSV in");
    const concurrency = integerFlag(args, 'concurrency');
    const retries = integerFlag(args, 'retries', 0);
    const maxFailures = integerFlag(args, 'max-failures', 0);
    const waitLockSeconds = integerFlag(args, 'wait-lock', 0);
    const stallSeconds = Number(args['stall-timeout']);
    if (!(stallSeconds > 0)) throw new UsageError(`expected --stall-timeout to be a positive number of seconds, got '${String(args['stall-timeout'])}'`);
    const [{ runDownloadS3 }, { createS3Client }] = await Promise.all([import('./download.js'), import('@imgpipe/s3')]);
    exitCleanlyOnSignals();
    const needsS3 = config.data.download_data || csv.startsWith('s3://');
    const client = needsS3 ? createS3Client(config.aws, { concurrency, maxAttempts: 1 }) : undefined;
    try {
      const summary = await runDownloadS3({
        csv,
        dest: config.data.download_path,
        download: config.data.download_data,
        ...(client ? { client } : {}),
        ...(config.aws.bucket_name ? { defaultBucket: config.aws.bucket_name } : {}),
        concurrency,
        retries,
        maxFailures,
        stallMs: stallSeconds * 1000,
        waitLockSeconds,
        ...(typeof args.failures === 'string' ? { failuresPath: args.failures } : {}),
        ...(typeof args.out === 'string' ? { outPath: args.out } : {}),
        stdin: context.stdin as import('node:stream').Readable,
        stdout: context.stdout,
        stderr: context.stderr,
        cwd: context.cwd,
        log: context.log,
      });
      return summary.exitCode;
    } finally {
      client?.destroy();
    }
  },
};

function isTty(stream: unknown): boolean {
  return Boolean((stream as { isTTY?: boolean }).isTTY);
}
