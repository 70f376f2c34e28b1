import { Batcher } from './batcher.js';
import { HttpError, UnavailableError } from './http-error.js';
import type { ImageItem } from './request.js';

/** What serve needs of a loaded model (core's LoadedModel has this shape). */
export interface ClassifierModel {
  labels: string[];
  inputSize: number;
  /** uint8 NHWC pixels of `count` images in, count * labels.length softmax probabilities out. */
  predict(pixels: Uint8Array, count: number): Promise<Float32Array>;
  /** predict() calls that can usefully run at once (a TF.js WebAssembly worker pool's size); default 1. */
  concurrency?: number;
}

/** Encoded image bytes -> size*size*3 uint8 RGB, the same decode and resize as training; throws on bad images. */
export type ImageDecoder = (bytes: Buffer) => Promise<Uint8Array>;

export interface Prediction {
  /** Index of the most probable label. */
  index: number;
  label: string;
  probs: Float32Array;
}

export interface ClassifierOptions {
  model: ClassifierModel;
  decode: ImageDecoder;
  maxBatch: number;
  maxDelayMs: number;
  maxQueue: number;
  onBatch?(size: number, seconds: number, error?: unknown): void;
}

export interface Classifier {
  labels: string[];
  /** Decode every item (400 naming the first bad one), then classify them through the shared batcher. */
  classify(items: readonly ImageItem[]): Promise<Prediction[]>;
  /** Images admitted and not yet classified (decoding or waiting for a batch). */
  readonly pending: number;
  /** Images waiting in the batch queue. */
  readonly queueDepth: number;
  /** Stop waiting for batches to fill: run what is queued now (shutdown). */
  flush(): void;
  whenIdle(): Promise<void>;
}

/**
 * The model behind the dynamic batcher. Admission is bounded: images being decoded count against
 * --max-queue as well as queued ones, so an overloaded server answers 503 early instead of buffering.
 */
export function createClassifier(options: ClassifierOptions): Classifier {
  const { model, decode, maxQueue } = options;
  const classes = model.labels.length;
  const area = model.inputSize * model.inputSize * 3;
  const batcher = new Batcher<Uint8Array, Float32Array>({
    maxBatch: options.maxBatch,
    maxDelayMs: options.maxDelayMs,
    concurrency: Math.max(1, Math.floor(model.concurrency ?? 1)),
    // Admission below already bounds the queue; this is a second guard.
    maxQueue,
    onBatch: options.onBatch,
    async predictBatch(images) {
      const pixels = images.length === 1 ? images[0]! : new Uint8Array(images.length * area);
      if (images.length > 1) images.forEach((image, i) => pixels.set(image, i * area));
      const probs = await model.predict(pixels, images.length);
      if (probs.length !== images.length * classes) {
        throw new Error(`model.predict returned ${probs.length} values for ${images.length} images of ${classes} classes`);
      }
      return images.map((_, i) => probs.slice(i * classes, (i + 1) * classes));
    },
  });
  let pending = 0;

  async function decodeAll(items: readonly ImageItem[]): Promise<Uint8Array[]> {
    const settled = await Promise.allSettled(items.map((item) => decode(item.bytes)));
    return settled.map((result, i) => {
      if (result.status === 'fulfilled') {
        if (result.value.length !== area) throw new Error(`decoder returned ${result.value.length} bytes, expected ${area}`);
        return result.value;
      }
      const item = items[i]!;
      const error = result.reason as { message?: string; reason?: unknown; source?: unknown };
      // core's ImageRejected says "<source>: <reason>: <detail>"; the item's name replaces the source.
      const message = String(error?.message ?? error);
      const text = typeof error?.source === 'string' && message.startsWith(`${error.source}: `) ? message.slice(error.source.length + 2) : message;
      const details = typeof error?.reason === 'string' ? { reason: error.reason } : {};
      throw new HttpError(400, `${item.name}: ${text}`, { item: item.name, details, cause: result.reason });
    });
  }

  return {
    labels: model.labels,
    get pending() {
      return pending;
    },
    get queueDepth() {
      return batcher.depth;
    },
    async classify(items) {
      if (pending + items.length > maxQueue) {
        throw new UnavailableError(`server busy: ${pending} images pending, limit ${maxQueue} (--max-queue); retry later`);
      }
      pending += items.length;
      try {
        const pixels = await decodeAll(items);
        const probs = await batcher.submitAll(pixels);
        return probs.map((p) => {
          let index = 0;
          for (let c = 1; c < p.length; c += 1) if (p[c]! > p[index]!) index = c;
          return { index, label: model.labels[index]!, probs: p };
        });
      } finally {
        pending -= items.length;
      }
    },
    flush: () => batcher.flush(),
    whenIdle: () => batcher.whenIdle(),
  };
}
