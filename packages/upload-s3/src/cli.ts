import type { Readable } from 'node:stream';
import { InputError, resolveInputPointer, stopOnSignals, UsageError, type ToolCli } from '@imgpipe/kit';

export const uploadS3Cli: ToolCli = {
  name: 'upload-s3',
  summary:
    'Publish a run to s3://BUCKET/PREFIX/ atomically: results.csv, the model directory unchanged, the evaluation ' +
    'report and plots when present, and load_model.mjs (a loader snippet) go under PREFIX/p/<id>/, then ' +
    'PREFIX/publication.json, written last, lists them with sizes and sha256; what the previous publication listed ' +
    'is removed after (nothing else under the prefix). Readers trust only that manifest. Objects already there with ' +
    'the same content are skipped. One publisher per prefix (the PREFIX/publication.lock lease): another exits 75. ' +
    'SIGINT/SIGTERM abort the multipart uploads in flight and exit 130/143. Prints one JSON pointer line.',
  packageJson: new URL('../package.json', import.meta.url),
  configKeys: [
    'aws.bucket_name',
    'aws.results_upload_path',
    'aws.endpoint',
    'aws.aws_default_region',
    'aws.aws_access_key_id',
    'aws.aws_secret_access_key',
  ],
  options: {
    run: { type: 'string', describe: 'The run directory (or a model directory); default: the run pointer on stdin' },
    concurrency: { value: { type: 'int', min: 1 }, default: 8, describe: 'Uploads in flight' },
    retries: { value: { type: 'int', min: 0 }, default: 5, describe: 'Retries per object on throttling, 5xx, resets and timeouts' },
    'part-size': { value: { type: 'number', min: 5, max: 10 }, default: 8, describe: 'Multipart part size in MiB; larger files go up in parts' },
  },
  examples: [
    ['train --data prep/ | eval-model | upload-s3 --bucket my-bucket --prefix results/', 'publish the evaluated run of a pipeline'],
    ['upload-s3 --run runs/20261127-0512-ab12 --prefix s3://my-bucket/models/cats/', 'publish a run directory'],
    ['node load_model.mjs model/ cat.jpg', 'then, after downloading the prefix: classify an image with the snippet'],
  ],
  async run(args, context) {
    const { config } = context.settings;
    const concurrency = args.concurrency as number;
    const retries = args.retries as number;
    const partMiB = args['part-size'] as number;
    const { isS3Uri, parseS3Uri } = await import('@imgpipe/s3');
    let bucket = config.aws.bucket_name;
    let prefix = config.aws.results_upload_path;
    if (isS3Uri(prefix)) ({ bucket, key: prefix } = parseS3Uri(prefix, '--prefix'));
    if (!bucket) throw new UsageError('no bucket: pass --bucket NAME (aws.bucket_name) or --prefix s3://bucket/prefix/');
    const pointer = await resolveInputPointer({
      flag: typeof args.run === 'string' ? args.run : undefined,
      flagName: '--run DIR',
      kinds: ['run', 'eval', 'model'],
      stdin: context.stdin as Readable & { isTTY?: boolean },
    });
    const dir = typeof pointer.run === 'string' ? pointer.run : pointer.path;
    if (typeof dir !== 'string' || !dir) throw new InputError(`the ${pointer.kind} pointer on stdin names no path`);
    const [{ runUploadS3 }, { createS3Client }] = await Promise.all([import('./upload.js'), import('@imgpipe/s3')]);
    const client = createS3Client(config.aws, { concurrency, maxAttempts: 1 });
    const stop = stopOnSignals((signal) => context.log.warn(`${signal}: aborting the uploads in flight; no manifest is written`));
    try {
      await runUploadS3({
        dir,
        client,
        bucket,
        prefix,
        concurrency,
        retries,
        partSize: partMiB * 1024 * 1024,
        stdout: context.stdout,
        stderr: context.stderr,
        cwd: context.cwd,
        log: context.log,
        signal: stop.signal,
      });
    } catch (error) {
      if (!stop.signal.aborted) throw error;
    } finally {
      stop.dispose();
      client.destroy();
    }
    return stop.exitCode() ?? 0;
  },
};
