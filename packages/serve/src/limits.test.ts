// serve's limits live in one table (limits.ts): the flags, their defaults and the server's timeouts come from it.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createLogger } from '@imgpipe/kit';
import { parseByteSize } from './body.js';
import { serveCli } from './cli.js';
import { formatByteSize, LIMITS, type Limit } from './limits.js';
import type { AppState } from './route-types.js';
import { createHttpApp } from './server.js';
import { createServeMetrics } from './serve-metrics.js';

const quiet = { write: () => true } as unknown as NodeJS.WritableStream;

describe('LIMITS, the one table of serve limits', () => {
  it("each flag limit is serve's flag of that name, with the table's default and help text", () => {
    const flags = Object.values(LIMITS as Record<string, Limit>).filter((limit) => limit.flag !== undefined);
    assert.ok(flags.length >= 10);
    for (const limit of flags) {
      const option = serveCli.options?.[limit.flag!];
      assert.ok(option, `--${limit.flag} is a serve flag`);
      assert.equal(option.describe, limit.describe);
      const given = limit.value === 'bytes' ? parseByteSize(String(option.default), `--${limit.flag}`) : option.default;
      assert.equal(given, limit.default, `--${limit.flag}'s default`);
    }
  });

  it('byte sizes are written as a user would and read back exactly', () => {
    assert.equal(formatByteSize(LIMITS.maxBody.default), '32mb');
    assert.equal(formatByteSize(LIMITS.maxInflightBytes.default), '256mb');
    for (const bytes of [1, 1000, 1024, 5 * 1024 ** 3, 3 * 1024 ** 2 + 1]) assert.equal(parseByteSize(formatByteSize(bytes), '--x'), bytes);
  });

  it("the server's socket timeouts are the table's", () => {
    const metrics = createServeMetrics({ queueDepth: () => 0, pendingImages: () => 0, inFlight: () => 0, ready: () => false, numTensors: () => 0 });
    const log = createLogger({ name: 'serve', stream: quiet });
    const app = createHttpApp({ state: {} as AppState, metrics, log, accessLog: () => undefined });
    assert.equal(app.server.keepAliveTimeout, LIMITS.keepAliveTimeoutMs.default);
    assert.equal(app.server.headersTimeout, LIMITS.headersTimeoutMs.default);
    assert.equal(app.server.requestTimeout, LIMITS.requestTimeoutMs.default);
  });
});
