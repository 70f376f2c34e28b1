import pLimit from 'p-limit';
import { argmax } from '@imgpipe/kit';
import { Batcher } from './batcher.js';
import { HttpError, UnavailableError } from './http-error.js';
import { LIMITS } from './limits.js';
import type { ImageItem } from './request.js';
import { checkFormat, imageDimensions, ImageRejected, type ImageFormat, type ModelInputAndView } from '@imgpipe/images';

/** What serve needs of a loaded model (engines' LoadedModel has this shape). */
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

/** The same model input plus a viewable copy of the picture, from one decode where it can (images' decodeWithView). */
export type ViewDecoder = (bytes: Buffer) => Promise<ModelInputAndView>;

export interface Prediction {
  /** Index of the most probable label. */
  index: number;
  label: string;
  probs: Float32Array;
}

/** A prediction with the decoded picture it was made from, for drawing the answer on. */
export type PredictionWithView = Prediction & Pick<ModelInputAndView, 'view' | 'format'>;

interface ClassifierOptions {
  model: ClassifierModel;
  decode: ImageDecoder;
  /** For classifyWithViews. */
  decodeWithView: ViewDecoder;
  maxBatch: number;
  maxDelayMs: number;
  maxQueue: number;
  /** Checked before decoding: formats by signature, pixels per request from the headers. */
  formats?: readonly ImageFormat[];
  maxRequestPixels?: number;
  /** An image over this (decompression bombs) is left to the decoder to reject with its own reason. */
  maxImagePixels?: number;
  /** Decodes of one request running at once, so a big request cannot fill the thread pool (default 2). */
  decodeConcurrency?: number;
  /** Advice for the operator about a rejected image (a flag to raise): logged, never sent to the client. */
  onHint?(item: string, hint: string): void;
  onBatch?(size: number, seconds: number, error?: unknown): void;
}

export interface Classifier {
  labels: string[];
  /** Decode every item (400 naming the first bad one), then classify them through the shared batcher. */
  classify(items: readonly ImageItem[]): Promise<Prediction[]>;
  /** classify, keeping each decoded picture (upright, sRGB, within the view limit) for an annotated echo. */
  classifyWithViews(items: readonly ImageItem[]): Promise<PredictionWithView[]>;
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
  // Buffers to put a batch together in, kept from batch to batch (as many as run at once): a new one per batch is
  // external memory that makes V8 collect garbage (2-5 MB for a served batch of ResNet50).
  const batchBuffers: Uint8Array[] = [];
  let pending = 0;
  /** Images admitted and not yet in the batcher's queue. */
  let decoding = 0;
  const batcher = new Batcher<Uint8Array, Float32Array>({
    maxBatch: options.maxBatch,
    maxDelayMs: options.maxDelayMs,
    concurrency: Math.max(1, Math.floor(model.concurrency ?? 1)),
    // Admission below already bounds the queue; this is a second guard.
    maxQueue,
    onBatch: options.onBatch,
    moreComing: () => decoding > 0,
    async predictBatch(images) {
      const bytes = images.length * area;
      const spare = images.length === 1 ? undefined : batchBuffers.pop();
      const batch =
        images.length === 1 ? undefined : spare && spare.length >= bytes ? spare : new Uint8Array(Math.max(options.maxBatch * area, bytes));
      const pixels = batch ? batch.subarray(0, bytes) : images[0]!;
      if (batch)
        images.forEach((image, i) => {
          pixels.set(image, i * area);
        });
      let probs: Float32Array;
      try {
        probs = await model.predict(pixels, images.length);
      } finally {
        if (batch) batchBuffers.push(batch);
      }
      if (probs.length !== images.length * classes) {
        throw new Error(`model.predict returned ${probs.length} values for ${images.length} images of ${classes} classes`);
      }
      return images.map((_, i) => probs.slice(i * classes, (i + 1) * classes));
    },
  });

  const perRequest = Math.max(1, options.decodeConcurrency ?? LIMITS.decodesPerRequest.default);

  /** 400 (415 for a format not accepted) naming the item, with the reason code; operator hints go to onHint. */
  function rejected(item: ImageItem, reason: unknown): HttpError {
    const error = reason as { message?: string; reason?: unknown; detail?: unknown; hint?: unknown };
    const text = error instanceof ImageRejected ? `${error.reason}: ${error.detail}` : String(error?.message ?? error);
    if (typeof error?.hint === 'string') options.onHint?.(item.name, error.hint);
    const code = typeof error?.reason === 'string' ? error.reason : undefined;
    return new HttpError(code === 'unsupported-format' ? 415 : 400, `${item.name}: ${text}`, {
      item: item.name,
      details: code ? { reason: code } : {},
      cause: reason,
    });
  }

  /** Signatures and the request's total pixels from the headers, before any decoding. */
  async function checkItems(items: readonly ImageItem[]): Promise<void> {
    for (const item of items) {
      try {
        if (options.formats) checkFormat(item.bytes, options.formats, item.name);
      } catch (error) {
        throw rejected(item, error);
      }
    }
    const limit = options.maxRequestPixels;
    if (limit === undefined) return;
    let total = 0;
    for (const item of items) {
      const size = await imageDimensions(item.bytes);
      const pixels = size ? size.width * size.height : 0;
      if (pixels <= (options.maxImagePixels ?? Infinity)) total += pixels;
      if (total > limit) {
        options.onHint?.(item.name, 'raise --max-request-pixels');
        throw new HttpError(400, `the images of this request hold more than ${limit} pixels in all (at ${item.name}); send fewer or smaller images`, {
          details: { reason: 'too-many-pixels' },
        });
      }
    }
  }

  /**
   * Decode with at most `perRequest` at once, in order; the first bad item (by position) fails the request, and no
   * decode starts after a failure.
   */
  async function decodeAll<T>(items: readonly ImageItem[], decode: (bytes: Buffer) => Promise<T>): Promise<T[]> {
    const results: T[] = new Array(items.length);
    const failures: { index: number; reason: unknown }[] = [];
    const limit = pLimit(perRequest);
    await Promise.all(
      items.map((item, index) =>
        limit(async () => {
          if (failures.length > 0) return;
          try {
            results[index] = await decode(item.bytes);
          } catch (reason) {
            failures.push({ index, reason });
          }
        }),
      ),
    );
    if (failures.length > 0) {
      const first = failures.reduce((a, b) => (b.index < a.index ? b : a));
      throw rejected(items[first.index]!, first.reason);
    }
    return results;
  }

  /** Admission, header checks, decoding and batching of one request's images. */
  async function run<T>(
    items: readonly ImageItem[],
    decodeOne: (bytes: Buffer) => Promise<T>,
    pixelsOf: (decoded: T) => Uint8Array,
  ): Promise<{ decoded: T[]; predictions: Prediction[] }> {
    if (pending + items.length > maxQueue) {
      throw new UnavailableError(`server busy: ${pending} images pending, limit ${maxQueue} (--max-queue); retry later`);
    }
    pending += items.length;
    decoding += items.length;
    try {
      let pixels: Uint8Array[];
      let decoded: T[];
      try {
        await checkItems(items);
        decoded = await decodeAll(items, decodeOne);
        pixels = decoded.map(pixelsOf);
        for (const image of pixels) if (image.length !== area) throw new Error(`decoder returned ${image.length} bytes, expected ${area}`);
      } finally {
        decoding -= items.length;
      }
      const probs = await batcher.submitAll(pixels);
      const predictions = probs.map((p) => {
        const index = argmax(p);
        return { index, label: model.labels[index]!, probs: p };
      });
      return { decoded, predictions };
    } finally {
      pending -= items.length;
    }
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
      return (await run(items, decode, (pixels) => pixels)).predictions;
    },
    async classifyWithViews(items) {
      const { decoded, predictions } = await run(items, options.decodeWithView, (d) => d.pixels);
      return predictions.map((prediction, i) => ({ ...prediction, view: decoded[i]!.view, format: decoded[i]!.format }));
    },
    flush: () => batcher.flush(),
    whenIdle: () => batcher.whenIdle(),
  };
}
