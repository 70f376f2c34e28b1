import { UsageError, type ToolCli, exitCleanlyOnSignals } from '@imgpipe/kit';
import { parseShard } from './shard.js';

export const downloadS3Cli: ToolCli = {
  name: 'download-s3',
  summary:
    'Download the images listed in a CSV (bucket,s3_image,category,label) from S3 into --dest; print the CSV with a ' +
    'local_image column on stdout. Files already present with the same content are skipped.',
  packageJson: new URL('../package.json', import.meta.url),
  configKeys: [
    'data.images_csv',
    'data.download_path',
    'data.download_data',
    'aws.bucket_name',
    'aws.endpoint',
    'aws.aws_default_region',
    'aws.aws_access_key_id',
    'aws.aws_secret_access_key',
  ],
  options: {
    concurrency: { value: { type: 'int', min: 1 }, default: 16, describe: 'Downloads in flight (and HTTP connections kept open)' },
    retries: { value: { type: 'int', min: 0 }, default: 5, describe: 'Retries per object on throttling, 5xx, resets, timeouts and stalled bodies' },
    'max-failures': { value: { type: 'int', min: 0 }, default: 0, describe: 'Failed rows tolerated before the exit code is non-zero' },
    failures: { type: 'string', describe: 'Write the failed rows with their reasons to this CSV' },
    out: { type: 'string', alias: 'o', describe: 'Write the CSV to this file (atomically) instead of stdout' },
    shard: {
      type: 'string',
      describe:
        'Only rows I, I+N, I+2N, ... (0-based data rows): shard I of N, so N machines share one download (and one --dest: each shard locks only itself); stdout has only those rows',
    },
    'stall-timeout': {
      value: { type: 'number', min: 0, exclusiveMin: true },
      default: 30,
      describe: 'Seconds without body data before a download is aborted and retried',
    },
    'wait-lock': {
      value: { type: 'int', min: 0 },
      default: 0,
      describe: 'Seconds to wait for another download into the same --dest (with --shard: the same shard of it) to finish (default: exit 75 at once)',
    },
  },
  examples: [
    ['download-s3 --csv s3://my-bucket/images.csv --dest data/ > images-local.csv', 'download the images a CSV on S3 lists'],
    ['download-s3 --csv images.csv --dest data/ --endpoint http://127.0.0.1:9000', 'from an S3-compatible store'],
    ['download-s3 --csv images-local.csv --no-download-data', 'only check that every local_image exists'],
    ['download-s3 --csv s3://my-bucket/images.csv --dest data/ --shard 0/4 > part-0.csv', 'the first of four machines sharing a download'],
  ],
  async run(args, context) {
    const { config } = context.settings;
    const csv = config.data.images_csv || (isTty(context.stdin) ? '' : '-');
    if (!csv) throw new UsageError('no input: pass --csv FILE, --csv - (stdin) or --csv s3://bucket/key.csv, or pipe the CSV in');
    const concurrency = args.concurrency as number;
    const shard = args.shard === undefined ? undefined : parseShard(String(args.shard));
    const stallSeconds = args['stall-timeout'] as number;
    const waitLockSeconds = args['wait-lock'] as number;
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
        retries: args.retries as number,
        maxFailures: args['max-failures'] as number,
        stallMs: stallSeconds * 1000,
        ...(shard ? { shard } : {}),
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
