import { Counter, Gauge, Histogram, RateWindow, Registry } from './metrics.js';

export interface ServeMetrics {
  registry: Registry;
  requests: Counter;
  latency: Histogram;
  batchSize: Histogram;
  batchSeconds: Histogram;
  images: Counter;
  imageRate: RateWindow;
  /** Record one finished request. */
  observeRequest(route: string, status: number, seconds: number): void;
}

interface ServeGauges {
  queueDepth(): number;
  pendingImages(): number;
  inFlight(): number;
  ready(): boolean;
  /** tf.memory().numTensors of the engine, so a tensor leak shows on a dashboard (and in the tests). */
  numTensors(): number;
}

const LATENCY_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

/** Every metric /metrics exposes, prefixed imgpipe_serve_. */
export function createServeMetrics(gauges: ServeGauges): ServeMetrics {
  const registry = new Registry();
  const requests = registry.register(new Counter('imgpipe_serve_requests_total', 'HTTP requests by route and status code.'));
  const latency = registry.register(
    new Histogram('imgpipe_serve_request_duration_seconds', 'Request latency by route, from first byte to last byte of the answer.', LATENCY_BUCKETS),
  );
  const batchSize = registry.register(
    new Histogram('imgpipe_serve_batch_size', 'Images per model.predict call (dynamic batching).', [1, 2, 4, 8, 16, 32, 64, 128, 256]),
  );
  const batchSeconds = registry.register(
    new Histogram('imgpipe_serve_batch_duration_seconds', 'Duration of each model.predict call.', LATENCY_BUCKETS),
  );
  const images = registry.register(new Counter('imgpipe_serve_images_total', 'Images classified.'));
  const imageRate = new RateWindow(10);
  registry.register(new Gauge('imgpipe_serve_images_per_second', 'Images classified per second over the last 10 s.', () => imageRate.perSecond()));
  registry.register(new Gauge('imgpipe_serve_queue_depth', 'Images waiting for a batch.', gauges.queueDepth));
  registry.register(
    new Gauge(
      'imgpipe_serve_pending_images',
      'Images admitted and not yet classified: being decoded or waiting for a batch (bounded by --max-queue).',
      gauges.pendingImages,
    ),
  );
  registry.register(new Gauge('imgpipe_serve_in_flight_requests', 'Requests being handled.', gauges.inFlight));
  registry.register(
    new Gauge('imgpipe_serve_ready', '1 once the model is loaded and warmed up, 0 before and while shutting down.', () => (gauges.ready() ? 1 : 0)),
  );
  registry.register(new Gauge('process_resident_memory_bytes', 'Resident memory of the process.', () => process.memoryUsage.rss()));
  registry.register(new Gauge('nodejs_heap_used_bytes', 'V8 heap in use.', () => process.memoryUsage().heapUsed));
  registry.register(
    new Gauge('imgpipe_serve_tf_num_tensors', 'tf.memory().numTensors of the TensorFlow.js engine (flat when nothing leaks).', gauges.numTensors),
  );
  return {
    registry,
    requests,
    latency,
    batchSize,
    batchSeconds,
    images,
    imageRate,
    observeRequest(route, status, seconds) {
      requests.inc({ route, status: String(status) });
      latency.observe(seconds, { route });
    },
  };
}
