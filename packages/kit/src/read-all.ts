import type { Readable } from 'node:stream';

/** Everything a stream yields until it ends (all of stdin, say), as one buffer. */
export async function readAll(input: Readable | NodeJS.ReadableStream): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of input) chunks.push(typeof chunk === 'string' ? Buffer.from(chunk) : (chunk as Buffer));
  return Buffer.concat(chunks);
}
