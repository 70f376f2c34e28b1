import { type DecodeOptions, type DecodePool, type FileIdentity, ImageRejected, type RejectReason } from '@imgpipe/images';
import pLimit from 'p-limit';

type DecodeOutcome = ({ ok: true; pixels: Uint8Array } | { ok: false; reason: RejectReason; detail: string; cause?: string }) & {
  /** The file's identity, when asked for. */
  identity?: FileIdentity;
};

/**
 * Map `fn` over `items` with at most `concurrency` calls running and at most `window` results waiting, yielding
 * results in input order: decoding runs in parallel while the output stays deterministic and memory stays bounded.
 */
export async function* orderedMap<T, R>(
  items: readonly T[],
  fn: (item: T, index: number) => Promise<R>,
  concurrency: number,
  window = concurrency * 4,
): AsyncGenerator<R> {
  const limit = pLimit(Math.max(1, concurrency));
  const pending: Promise<R>[] = [];
  let next = 0;
  const fill = () => {
    while (next < items.length && pending.length < Math.max(window, concurrency)) {
      const index = next++;
      const started = limit(() => fn(items[index]!, index));
      started.catch(() => undefined); // awaited in order below; avoid an unhandled rejection meanwhile
      pending.push(started);
    }
  };
  fill();
  while (pending.length > 0) {
    const result = await pending.shift()!;
    fill();
    yield result;
  }
}

/** The most memory the shared buffers of decoded images may take (see decodeWindow). */
export const DECODE_BUFFER_BYTES = 64 * 1024 * 1024;

/**
 * How many decodes to keep in flight (the pool's concurrency, at least one per thread) and how many results may wait
 * to be written in order (twice that): the window's buffers stay under DECODE_BUFFER_BYTES, so at a large
 * --img-dimensions fewer decodes run ahead.
 */
export function decodeWindow(pool: Pick<DecodePool, 'threads' | 'concurrency'>, imageBytes: number): { inFlight: number; window: number } {
  const affordable = Math.floor(DECODE_BUFFER_BYTES / imageBytes / 2) - 1;
  const inFlight = Math.max(pool.threads, Math.min(pool.concurrency, affordable));
  return { inFlight, window: inFlight * 2 };
}

/**
 * `count` buffers of `bytes` each in one SharedArrayBuffer, for the decode threads to write images into: item i gets
 * buffer i % count, so nothing is allocated or moved per image.
 */
export function sharedBuffers(count: number, bytes: number): (index: number) => Uint8Array {
  const memory = new SharedArrayBuffer(count * bytes);
  const views = Array.from({ length: count }, (_, i) => new Uint8Array(memory, i * bytes, bytes));
  return (index) => views[index % count]!;
}

/**
 * Decode one image (into `into` when given); a rejection becomes an outcome, anything else (a bug, out of memory)
 * propagates. `withIdentity`: the file's identity comes with it, from the same read (DecodePool.decodeWithIdentity).
 */
export async function decodeOutcome(
  pool: DecodePool,
  path: string,
  options: DecodeOptions,
  into: Uint8Array | undefined,
  withIdentity: boolean,
): Promise<DecodeOutcome> {
  if (withIdentity) {
    const { identity, outcome } = await pool.decodeWithIdentity(path, options, into);
    return { ...('rejected' in outcome ? rejection(outcome.rejected) : { ok: true, pixels: outcome.pixels }), identity };
  }
  try {
    return { ok: true, pixels: await pool.decode(path, options, into) };
  } catch (error) {
    if (error instanceof ImageRejected) return rejection(error);
    throw error;
  }
}

function rejection(error: ImageRejected): DecodeOutcome {
  return {
    ok: false,
    reason: error.reason,
    detail: error.hint ? `${error.detail} (${error.hint})` : error.detail,
    ...(error.cause instanceof Error ? { cause: error.cause.message } : {}),
  };
}
