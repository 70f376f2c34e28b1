import { createLogger, stopOnSignals, UsageError, type CliContext, type ToolCli } from '@imgpipe/kit';
import { LIMITS, limitOption } from './limits.js';

export const serveCli: ToolCli = {
  name: 'serve',
  summary:
    "Serve a model directory over HTTP: the seed's POST / (and /predict) JSON route, the Open Inference Protocol (KServe V2) " +
    'REST routes, and Prometheus /metrics, with dynamic batching. Prints {"kind":"server","url":...} on stdout when ready; ' +
    'SIGTERM or SIGINT stops it gracefully.',
  packageJson: new URL('../package.json', import.meta.url),
  configKeys: ['train.device', 'aws.endpoint', 'aws.aws_default_region', 'aws.aws_access_key_id', 'aws.aws_secret_access_key'],
  options: {
    model: {
      type: 'string',
      demandOption: true,
      describe:
        'Model directory, or a publication s3://bucket/prefix/ (or .../prefix/model): what its publication.json lists, verified, downloaded once at start',
    },
    host: { type: 'string', default: '127.0.0.1', describe: 'Address to listen on (0.0.0.0 for every interface, e.g. in a container)' },
    port: {
      value: { type: 'int', min: 0, max: 65535 },
      default: 8080,
      describe: 'Port; 0 picks a free one (the URL is printed on stdout and stderr)',
    },
    'max-batch': limitOption('maxBatch'),
    'max-delay-ms': limitOption('maxDelayMs'),
    'max-queue': limitOption('maxQueue'),
    'max-body': limitOption('maxBody'),
    'max-pixels': limitOption('maxPixels'),
    echo: {
      type: 'string',
      choices: ['annotated', 'raw'],
      default: 'annotated',
      describe: 'The "encoded" image sent back: with the label drawn on it, or unchanged',
    },
    tta: {
      type: 'string',
      choices: ['none', 'flip'],
      describe:
        "Test-time augmentation: flip averages the softmax of each image and its mirror (twice the backbone work per image); default: the card's tta (set by eval-model --tta), else none",
    },
    'json-logs': { type: 'boolean', default: false, describe: 'Log one JSON object per line on stderr (per request and per server event)' },
    name: {
      type: 'string',
      describe:
        "Model name in the V2 routes (/v2/models/{name}); default: the card's name or project, else the directory's (its parent's for a run's model/)",
    },
    ui: { type: 'boolean', default: true, describe: 'Serve a page at GET / for browsers (drop an image, see the answer); --no-ui turns it off' },
    'max-images': limitOption('maxImages'),
    'max-request-pixels': limitOption('maxRequestPixels'),
    'max-inflight-bytes': limitOption('maxInflightBytes'),
    formats: {
      type: 'string',
      default: 'jpeg,png,webp,gif,tiff',
      describe: 'Image formats accepted, checked by their signature before decoding; others (SVG, AVIF, ...) get 415',
    },
    'decode-timeout': limitOption('decodeTimeoutSeconds'),
    'max-echo-pixels': limitOption('maxEchoPixels'),
    'shutdown-timeout': limitOption('shutdownTimeoutSeconds'),
  },
  examples: [
    ['serve --model runs/20261127-0512-ab12/model --port 8080', 'Serve a trained model on 127.0.0.1:8080'],
    ['serve --model s3://bucket/results/ --host 0.0.0.0 --json-logs', 'Serve a published model in a container'],
    [
      'curl -s localhost:8080/predict -d "{\\"data\\":[{\\"path\\":\\"x.jpg\\",\\"encoded\\":\\"$(base64 -w0 x.jpg)\\"}]}"',
      "Classify one image with the seed's request format",
    ],
  ],
  async run(args: Record<string, unknown>, context: CliContext) {
    const { parseByteSize } = await import('./body.js');
    const { parseDevice } = await import('@imgpipe/engines');
    const port = args.port as number;
    const maxDelayMs = args['max-delay-ms'] as number;
    const shutdownSeconds = args['shutdown-timeout'] as number;
    const maxPixels = args['max-pixels'] as number;
    const name = args.name as string | undefined;
    if (name !== undefined && !/^[\w.-]+$/.test(name)) {
      throw new UsageError(`expected --name to be letters, digits, '.', '_' or '-' (it goes in URLs), got '${name}'`);
    }
    const { parseImageFormats } = await import('@imgpipe/images');
    let formats: ReturnType<typeof parseImageFormats>;
    try {
      formats = parseImageFormats(String(args.formats));
    } catch (error) {
      throw new UsageError(`expected --formats to be ${(error as Error).message.replace(/^expected /, '')}`);
    }
    const decodeTimeoutSeconds = args['decode-timeout'] as number;
    const { config } = context.settings;
    const device = parseDevice(config.train.device);
    const model = String(args.model);

    const { runServe } = await import('./serve.js');
    const jsonLogs = Boolean(args['json-logs']);
    const log = jsonLogs
      ? createLogger({ name: 'serve', stream: context.stderr, quiet: context.log.quiet, debug: context.log.verbose, json: true })
      : context.log;
    const { createModelLoader } = await import('./model-loader.js');
    const stop = stopOnSignals((signal) => {
      log.info(`${signal}: stopping (no new connections; finishing requests in flight)`);
      // Decodes cannot be cancelled, and exit() itself waits for them (libuv joins its thread pool), so whatever
      // still runs a second after the timeout, the process ends by the signal it was sent, its default action.
      setTimeout(
        () => {
          log.warn(`still busy ${shutdownSeconds} s after ${signal} (--shutdown-timeout); ending now`);
          process.removeAllListeners(signal);
          process.kill(process.pid, signal);
        },
        shutdownSeconds * 1000 + LIMITS.shutdownExitDelayMs.default,
      ).unref();
    });
    try {
      const handle = await runServe({
        model,
        host: String(args.host),
        port,
        maxBatch: args['max-batch'] as number,
        maxDelayMs,
        maxQueue: args['max-queue'] as number,
        maxBody: parseByteSize(String(args['max-body']), '--max-body'),
        maxPixels,
        echo: args.echo as 'annotated' | 'raw',
        maxImages: args['max-images'] as number,
        maxRequestPixels: args['max-request-pixels'] as number,
        maxInflightBytes: parseByteSize(String(args['max-inflight-bytes']), '--max-inflight-bytes'),
        maxEchoPixels: args['max-echo-pixels'] as number,
        decodeTimeoutSeconds,
        formats,
        jsonLogs,
        name,
        graceMs: shutdownSeconds * 1000,
        load: createModelLoader({
          device,
          aws: config.aws,
          log,
          maxPixels,
          decodeTimeoutSeconds,
          ...(args.tta === undefined ? {} : { tta: args.tta as 'none' | 'flip' }),
        }),
        stdout: context.stdout,
        stderr: context.stderr,
        log,
        quiet: Boolean(args.quiet),
        signal: stop.signal,
        ui: Boolean(args.ui),
      });
      if (!stop.signal.aborted) await new Promise((resolve) => stop.signal.addEventListener('abort', resolve, { once: true }));
      await handle.close();
      return 0;
    } catch (error) {
      if (stop.signal.aborted) return 0; // stopped while loading: a requested stop, not a failure
      throw error;
    } finally {
      stop.dispose();
    }
  },
};
