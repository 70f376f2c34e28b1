import type { IncomingMessage } from 'node:http';
import { UsageError } from '@imgpipe/kit';
import { HttpError } from './http-error.js';

const bytesRead = new WeakMap<IncomingMessage, number>();

/** Body bytes readBody consumed from a request (for the request log). */
export function bodyBytes(request: IncomingMessage): number {
  return bytesRead.get(request) ?? 0;
}

/**
 * Read a request body of at most `limit` bytes. A Content-Length over the limit is refused before reading;
 * a chunked body is counted as it arrives and refused as soon as it passes the limit (413 either way).
 */
export async function readBody(request: IncomingMessage, limit: number): Promise<Buffer> {
  const tooLarge = (size: string) =>
    new HttpError(413, `request body ${size} is over the limit of ${limit} bytes (--max-body)`, { headers: { connection: 'close' } });
  const declared = Number(request.headers['content-length']);
  if (Number.isFinite(declared) && declared > limit) throw tooLarge(`of ${declared} bytes`);
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of request as AsyncIterable<Buffer>) {
    size += chunk.length;
    bytesRead.set(request, size);
    if (size > limit) throw tooLarge(`of more than ${limit} bytes`);
    chunks.push(chunk);
  }
  return Buffer.concat(chunks, size);
}

/** Parse a JSON body; 400 naming the position when it is not JSON, or when it is not an object. */
export function parseJsonObject(body: Buffer, what: string): Record<string, unknown> {
  if (body.length === 0) throw new HttpError(400, `empty body: expected a JSON object ${what}`);
  let value: unknown;
  try {
    value = JSON.parse(body.toString('utf8'));
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
