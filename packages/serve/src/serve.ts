import type { AddressInfo } from 'node:net';
import { once } from 'node:events';
import { FailureError, messageOf, writePointer, type Logger, type ModelCard } from '@imgpipe/kit';
import { createAccessLog, createEventLog } from './access-log.js';
import type { EchoMode } from './annotate.js';
import { createClassifier, type ClassifierModel, type ImageDecoder, type ViewDecoder } from './classifier.js';
import type { AppState } from './route-types.js';
import { createHttpApp } from './server.js';
import { createServeMetrics, type ServeMetrics } from './serve-metrics.js';
import { loadUiAssets } from './ui-assets.js';
import { IMAGE_FORMATS, tuneImageEngine, type ImageFormat } from '@imgpipe/images';
import { ByteBudget } from './body.js';
import { DEFAULT_LIMITS, type RequestLimits } from './limits.js';

/** A model ready to serve: the classifier's needs plus what the V2 metadata and shutdown use. */
export interface ServedModel extends ClassifierModel {
  /** Name for the V2 protocol when --name is not given (the card's or the directory's name). */
  name: string;
  version?: string;
  /** The same decode and resize as training (images' decodeToTensor with the card's size and fit). */
  decode: ImageDecoder;
  /** decode, plus the picture to draw the answer on, at most maxViewPixels (images' decodeWithView). */
  decodeWithView(bytes: Buffer, maxViewPixels: number): ReturnType<ViewDecoder>;
  /** card.json, for the page's model card. */
  card?: ModelCard | undefined;
  /** The local model directory (not for s3://), where the page looks for the run's report. */
  dir?: string | undefined;
  /** tf.memory().numTensors of the engine, exported in /metrics. */
  numTensors(): number;
  dispose(): Promise<void>;
}

export type ModelLoader = (spec: string) => Promise<ServedModel>;

export interface ServeOptions {
  /** A model directory or s3://bucket/prefix/model. */
  model: string;
  host: string;
  /** 0 picks a free port. */
  port: number;
  maxBatch: number;
  maxDelayMs: number;
  maxQueue: number;
  maxBody: number;
  /** Largest decoded image, in pixels; bigger ones (decompression bombs) get 400. */
  maxPixels: number;
  echo: EchoMode;
  jsonLogs: boolean;
  /** Model name for the V2 protocol; default from the loaded model. */
  name?: string | undefined;
  /** How long a shutdown waits for requests in flight before cutting connections. */
  graceMs: number;
  /** Per-request limits (DEFAULT_LIMITS and every format when not given). */
  maxImages?: number;
  maxRequestPixels?: number;
  maxInflightBytes?: number;
  maxEchoPixels?: number;
  decodeTimeoutSeconds?: number;
  formats?: readonly ImageFormat[];
  /** Loads the model (tests and the CLI pass engines' loadModel wrapped by loadServedModel). */
  load: ModelLoader;
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
  log: Logger;
  quiet?: boolean;
  serverVersion?: string;
  /** Aborting it (SIGTERM, SIGINT) stops the server gracefully, during loading too. */
  signal?: AbortSignal;
  /** Serve the page for browsers at GET / (the CLI's default; --no-ui turns it off). */
  ui?: boolean;
}

export interface ServeHandle {
  /** http://host:port/ */
  url: string;
  port: number;
  model: ServedModel;
  metrics: ServeMetrics;
  state: AppState;
  /** Graceful stop: no new connections, in-flight requests answered, model disposed. Safe to call twice. */
  close(): Promise<void>;
}

/**
 * Start serving: listen first (so liveness probes answer while the model loads), load the model, warm it up
 * with one prediction, then mark ready and print `{"kind":"server","url":...}` on stdout. Resolves with a
 * handle once ready; on a load failure the server is closed and the error thrown.
 */
export async function runServe(options: ServeOptions): Promise<ServeHandle> {
  const event = createEventLog({ json: options.jsonLogs, log: options.log, stream: options.stderr });
  let model: ServedModel | undefined;
  const metrics = createServeMetrics({
    queueDepth: () => state.classifier?.queueDepth ?? 0,
    pendingImages: () => state.classifier?.pending ?? 0,
    inFlight: () => app.inFlight(),
    ready: () => Boolean(state.classifier) && !state.shuttingDown,
    numTensors: () => model?.numTensors() ?? 0,
  });
  const limits: RequestLimits = {
    maxImages: options.maxImages ?? DEFAULT_LIMITS.maxImages,
    maxRequestPixels: options.maxRequestPixels ?? DEFAULT_LIMITS.maxRequestPixels,
    formats: options.formats ?? IMAGE_FORMATS,
    bodyBudget: new ByteBudget(options.maxInflightBytes ?? DEFAULT_LIMITS.maxInflightBytes),
    maxEchoPixels: options.maxEchoPixels ?? DEFAULT_LIMITS.maxEchoPixels,
    decodeTimeoutSeconds: options.decodeTimeoutSeconds ?? DEFAULT_LIMITS.decodeTimeoutSeconds,
  };
  const state: AppState = {
    limits,
    classifier: undefined,
    modelName: options.name ?? '',
    modelVersion: undefined,
    shuttingDown: false,
    maxBody: options.maxBody,
    maxQueue: options.maxQueue,
    maxPixels: options.maxPixels,
    echo: options.echo,
    registry: metrics.registry,
    serverVersion: options.serverVersion ?? '0.1.0',
    ui: options.ui ? { assets: await loadUiAssets() } : undefined,
  };
  const app = createHttpApp({
    state,
    metrics,
    log: options.log,
    accessLog: createAccessLog({ json: options.jsonLogs, log: options.log, stream: options.stderr, quiet: Boolean(options.quiet) }),
  });

  app.server.listen(options.port, options.host);
  await Promise.race([
    once(app.server, 'listening'),
    once(app.server, 'error').then(([error]) => {
      throw new FailureError(`cannot listen on ${options.host}:${options.port}: ${messageOf(error)} (--host, --port)`, { cause: error });
    }),
  ]);
  const address = app.server.address() as AddressInfo;
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  const url = `http://${host}:${address.port}/`;
  event('listening', { url, ready: false });

  let disposed = false;
  const disposeModel = async () => {
    if (model && !disposed) {
      disposed = true;
      await model.dispose();
    }
  };
  let closing: Promise<void> | undefined;
  const close = () =>
    (closing ??= (async () => {
      event('shutting down', { in_flight: app.inFlight() });
      state.classifier?.flush();
      await app.close(options.graceMs);
      await state.classifier?.whenIdle();
      await disposeModel();
      event('stopped');
    })());

  options.signal?.addEventListener('abort', () => void close(), { once: true });
  if (options.signal?.aborted) void close();

  try {
    const started = performance.now();
    // Every request brings new bytes: libvips' operation cache would only hold memory.
    await tuneImageEngine({ cache: false });
    model = await options.load(options.model);
    state.modelName = options.name ?? model.name;
    state.modelVersion = model.version;
    if (state.ui) state.ui.model = { card: model.card, dir: model.dir };
    const classifier = createClassifier({
      model,
      decode: model.decode,
      decodeWithView: (bytes) => model!.decodeWithView(bytes, limits.maxEchoPixels),
      maxBatch: options.maxBatch,
      maxDelayMs: options.maxDelayMs,
      maxQueue: options.maxQueue,
      formats: limits.formats,
      maxRequestPixels: limits.maxRequestPixels,
      maxImagePixels: options.maxPixels,
      onHint: (item, hint) => options.log.warn(`rejected ${item}: ${hint} to accept such images`),
      onBatch(size, seconds, error) {
        metrics.batchSize.observe(size);
        metrics.batchSeconds.observe(seconds);
        if (!error) {
          metrics.images.inc({}, size);
          metrics.imageRate.add(size);
        }
      },
    });
    // Warm-up: one prediction through the real path, so the first request does not pay for compilation.
    await model.predict(new Uint8Array(model.inputSize * model.inputSize * 3), 1);
    if (state.shuttingDown) throw new FailureError('stopped before the model was ready');
    state.classifier = classifier;
    event('ready', {
      url,
      model: state.modelName,
      labels: model.labels,
      input_size: model.inputSize,
      seconds: Number(((performance.now() - started) / 1000).toFixed(2)),
      max_batch: options.maxBatch,
      max_delay_ms: options.maxDelayMs,
    });
  } catch (error) {
    await close();
    await disposeModel(); // loaded after a stop began: close() ran before there was a model to dispose
    throw error;
  }
  writePointer(options.stdout, { kind: 'server', url, model: options.model, name: state.modelName });
  return { url, port: address.port, model, metrics, state, close };
}
