import type { IncomingMessage } from 'node:http';
import { StringDecoder } from 'node:string_decoder';
import { UsageError } from '@imgpipe/kit';
import { HttpError, UnavailableError } from './http-error.js';
import { LIMITS } from './limits.js';

const bytesRead = new WeakMap<IncomingMessage, number>();

/** How long a request body may deliver nothing before the connection is cut. */
const BODY_IDLE_MS = LIMITS.bodyIdleMs.default;

/** Body bytes readBodyText consumed from a request (for the request log). */
export function bodyBytes(request: IncomingMessage): number {
  return bytesRead.get(request) ?? 0;
}

/**
 * Bytes of request bodies held at once, across requests: a body is admitted (its Content-Length reserved) before
 * any of it is read, a chunked one as it arrives; the server releases a request's share once it is answered.
 */
export class ByteBudget {
  #used = 0;
  readonly #held = new WeakMap<IncomingMessage, number>();
  constructor(readonly limit: number) {}

  get used(): number {
    return this.#used;
  }

  /** Reserve `bytes` more for `request`, or throw 503 (Retry-After) when the budget cannot hold them. */
  reserve(request: IncomingMessage, bytes: number): void {
    if (this.#used + bytes > this.limit) {
      throw new UnavailableError(
        `server busy: ${this.#used} bytes of request bodies in flight, limit ${this.limit} (--max-inflight-bytes); retry later`,
      );
    }
    this.#used += bytes;
    this.#held.set(request, (this.#held.get(request) ?? 0) + bytes);
  }

  release(request: IncomingMessage): void {
    this.#used -= this.#held.get(request) ?? 0;
    this.#held.delete(request);
  }
}

/**
 * Read a request body of at most `limit` bytes. A Content-Length over the limit is refused before reading;
 * a chunked body is counted as it arrives and refused as soon as it passes the limit (413 either way). With a
 * budget, the declared length is reserved before reading (503 when it does not fit), a chunked body's chunks as
 * they come. A compressed body (any Content-Encoding but identity) is refused with 415 rather than parsed as is.
 * The text is decoded from UTF-8 as it arrives: no Buffer of the whole body is made (one more copy, and external
 * memory, which makes V8 collect garbage more often).
 */
export async function readBodyText(request: IncomingMessage, limit: number, budget?: ByteBudget): Promise<string> {
  const tooLarge = (size: string) =>
    new HttpError(413, `request body ${size} is over the limit of ${limit} bytes (--max-body)`, { headers: { connection: 'close' } });
  const encoding = request.headers['content-encoding']?.trim().toLowerCase();
  if (encoding && encoding !== 'identity') {
    throw new HttpError(415, `Content-Encoding ${JSON.stringify(encoding)} is not accepted; send the body uncompressed`, {
      headers: { 'accept-encoding': 'identity', connection: 'close' },
    });
  }
  const declared = Number(request.headers['content-length']);
  const hasLength = request.headers['content-length'] !== undefined && Number.isFinite(declared);
  if (hasLength && declared > limit) throw tooLarge(`of ${declared} bytes`);
  if (budget && hasLength) budget.reserve(request, declared);
  const decoder = new StringDecoder('utf8');
  let text = '';
  let size = 0;
  // A body that stops arriving is cut after BODY_IDLE_MS, so a slow client cannot hold its share of the budget.
  let last = performance.now();
  const idle = setInterval(() => {
    if (performance.now() - last > BODY_IDLE_MS) request.destroy(new HttpError(408, `request body stalled for ${BODY_IDLE_MS} ms`));
  }, BODY_IDLE_MS / 4);
  try {
    for await (const chunk of request as AsyncIterable<Buffer>) {
      last = performance.now();
      size += chunk.length;
      bytesRead.set(request, size);
      if (size > limit) throw tooLarge(`of more than ${limit} bytes`);
      if (budget && !hasLength) budget.reserve(request, chunk.length);
      text += decoder.write(chunk);
    }
  } finally {
    clearInterval(idle);
  }
  return text + decoder.end();
}

/** Parse a JSON body; 400 naming the position when it is not JSON, or when it is not an object. */
export function parseJsonObject(body: string, what: string): Record<string, unknown> {
  if (body.length === 0) throw new HttpError(400, `empty body: expected a JSON object ${what}`);
  let value: unknown;
  try {
    value = JSON.parse(body);
  } catch (error) {
    throw new HttpError(400, `invalid JSON: ${(error as Error).message}`, { cause: error });
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new HttpError(400, `expected a JSON object ${what}, got ${Array.isArray(value) ? 'an array' : JSON.stringify(value)?.slice(0, 40)}`);
  }
  return value as Record<string, unknown>;
}

/** Parse a size flag: bytes, or a number with k, m or g (binary units), e.g. 16mb, 512k. */
export function parseByteSize(text: string | number, flag: string): number {
  const match = /^\s*(\d+(?:\.\d+)?)\s*([kmg]?)i?b?\s*$/i.exec(String(text));
  const unit = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3 }[match?.[2]?.toLowerCase() ?? ''];
  const value = match && unit ? Math.floor(Number(match[1]) * unit) : NaN;
  if (!(value >= 1)) throw new UsageError(`expected ${flag} to be a size in bytes like 1048576, 512k or 16mb, got '${text}'`);
  return value;
}
