import { createConnection, createServer, type Socket } from 'node:net';
import { createRng } from '@imgpipe/kit';

export interface FaultOptions {
  /** Share of server->client chunks after which the connection is cut mid-response (half the chunk sent). */
  dropShare?: number;
  /** Share of client->server chunks (in practice: requests) answered with a 503 SlowDown and a closed connection. */
  error503Share?: number;
  /** Share of server->client chunks after which the proxy sends half and then goes silent (a stalled body). */
  stallShare?: number;
  /** Delay (ms) added to every client->server chunk: a stand-in for a remote store's time to first byte. */
  latencyMs?: number;
  /** Seed of the fault decisions, so a failing run can be repeated. */
  seed?: number;
}

export interface FaultCounts {
  connections: number;
  dropped: number;
  errors503: number;
  stalled: number;
}

export interface FaultyProxy {
  endpoint: string;
  port: number;
  counts: FaultCounts;
  /** Stop injecting faults (later traffic passes through untouched). */
  heal(): void;
  close(): Promise<void>;
}

const SLOW_DOWN_BODY =
  '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>';

/**
 * A loopback TCP proxy in front of `target` (an http://127.0.0.1:PORT endpoint) that misbehaves like a busy S3:
 * some requests get `503 SlowDown`, some responses are cut off mid-body, some stall, and every request can be
 * delayed (`latencyMs`) like a store across a network. Decisions are per chunk, and
 * since the SDK does not pipeline, a client->server chunk is (the start of) one request.
 */
export async function startFaultyProxy(target: string, options: FaultOptions = {}): Promise<FaultyProxy> {
  const { dropShare = 0, error503Share = 0, stallShare = 0, latencyMs = 0, seed = 1 } = options;
  const url = new URL(target);
  const random = createRng(seed);
  const counts: FaultCounts = { connections: 0, dropped: 0, errors503: 0, stalled: 0 };
  const sockets = new Set<Socket>();
  let healed = false;

  const server = createServer((client) => {
    counts.connections += 1;
    const upstream = createConnection({ host: url.hostname, port: Number(url.port) });
    sockets.add(client).add(upstream);
    let dead = false;
    const kill = () => {
      dead = true;
      client.destroy();
      upstream.destroy();
    };
    client.on('close', () => {
      sockets.delete(client);
      upstream.destroy();
    });
    upstream.on('close', () => {
      sockets.delete(upstream);
      if (!dead) client.end();
    });
    client.on('error', kill);
    upstream.on('error', kill);

    client.on('data', (chunk: Buffer) => {
      if (dead) return;
      if (!healed && random() < error503Share) {
        counts.errors503 += 1;
        dead = true;
        upstream.destroy();
        client.end(
          `HTTP/1.1 503 Slow Down\r\nContent-Type: application/xml\r\nContent-Length: ${Buffer.byteLength(SLOW_DOWN_BODY)}\r\n` +
            `Connection: close\r\n\r\n${SLOW_DOWN_BODY}`,
        );
        return;
      }
      if (latencyMs > 0) setTimeout(() => !dead && upstream.write(chunk), latencyMs);
      else upstream.write(chunk);
    });
    upstream.on('data', (chunk: Buffer) => {
      if (dead) return;
      const roll = healed ? 1 : random();
      if (roll < dropShare) {
        counts.dropped += 1;
        client.write(chunk.subarray(0, Math.floor(chunk.length / 2)), () => kill());
        dead = true;
        return;
      }
      if (roll < dropShare + stallShare) {
        counts.stalled += 1;
        client.write(chunk.subarray(0, Math.floor(chunk.length / 2)));
        dead = true; // nothing more is forwarded; the client must give up on its own
        upstream.destroy();
        return;
      }
      client.write(chunk);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  if (!address || typeof address === 'string') throw new Error('faulty proxy: no TCP address');
  return {
    endpoint: `http://127.0.0.1:${address.port}`,
    port: address.port,
    counts,
    heal: () => (healed = true),
    async close() {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
