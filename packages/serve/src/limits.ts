import type { ToolOption, ValueSpec } from '@imgpipe/kit';

/** One of serve's limits: its default, the flag that sets it (none: fixed), and what it bounds. */
export interface Limit {
  default: number;
  /** The flag that sets it; a limit without one is fixed. */
  flag?: string;
  /** How the flag's text is read: kit's value spec, or 'bytes' (a size such as 32mb, read by parseByteSize). */
  value?: ValueSpec | 'bytes';
  /** What it bounds (the flag's --help text). */
  describe: string;
}

/**
 * Every limit serve enforces, in one table: the CLI's flags and defaults, runServe's defaults and the server's
 * socket and body timeouts all read it. Formats (--formats) are an accept-list, not a bound, and stay with the CLI.
 */
export const LIMITS = {
  maxBatch: { flag: 'max-batch', value: { type: 'int', min: 1 }, default: 32, describe: 'Most images per model call; 1 turns dynamic batching off' },
  maxDelayMs: {
    flag: 'max-delay-ms',
    value: { type: 'number', min: 0 },
    default: 5,
    describe: 'How long the first waiting image may wait for others to fill a batch (none while no other is being decoded)',
  },
  maxQueue: {
    flag: 'max-queue',
    value: { type: 'int', min: 1 },
    default: 256,
    describe: 'Most images admitted at once; beyond it requests get 503 with Retry-After',
  },
  maxBody: {
    flag: 'max-body',
    value: 'bytes',
    default: 32 * 1024 ** 2,
    describe: 'Largest request body (bytes, or with k/m/g); larger ones get 413',
  },
  maxPixels: {
    flag: 'max-pixels',
    value: { type: 'int', min: 1 },
    default: 40_000_000,
    describe: 'Largest image in decoded pixels (width x height); larger ones (decompression bombs) get 400',
  },
  maxImages: {
    flag: 'max-images',
    value: { type: 'int', min: 1 },
    default: 64,
    describe: 'Most images in one request; more get 400 (split the request)',
  },
  maxRequestPixels: {
    flag: 'max-request-pixels',
    value: { type: 'int', min: 1 },
    default: 256_000_000,
    describe: "Most decoded pixels (from the headers) summed over one request's images; more get 400",
  },
  maxInflightBytes: {
    flag: 'max-inflight-bytes',
    value: 'bytes',
    default: 256 * 1024 ** 2,
    describe: 'Request bodies held at once across requests (bytes, or with k/m/g); beyond it 503 with Retry-After, before reading the body',
  },
  decodeTimeoutSeconds: {
    flag: 'decode-timeout',
    value: { type: 'number', min: 0, exclusiveMin: true },
    default: 10,
    describe: 'Seconds one image may take to decode (or annotate) before it is given up with 400',
  },
  maxEchoPixels: {
    flag: 'max-echo-pixels',
    value: { type: 'int', min: 1 },
    default: 4_000_000,
    describe: 'Largest annotated echo in pixels; bigger images come back scaled down to fit',
  },
  shutdownTimeoutSeconds: {
    flag: 'shutdown-timeout',
    value: { type: 'number', min: 0 },
    default: 30,
    describe: 'Seconds to wait for requests in flight on SIGTERM before closing their connections',
  },
  shutdownExitDelayMs: {
    default: 1_000,
    describe: 'After --shutdown-timeout, how long native work (a decode) may still keep the process before it ends by the signal it was sent',
  },
  decodesPerRequest: { default: 2, describe: 'Images of one request decoded at once, so one request cannot fill the thread pool' },
  bodyIdleMs: { default: 10_000, describe: 'How long a request body may deliver nothing before the connection is cut (408)' },
  headersTimeoutMs: { default: 10_000, describe: "How long a request's headers may take to arrive" },
  requestTimeoutMs: { default: 120_000, describe: 'How long a whole request may take to arrive' },
  keepAliveTimeoutMs: { default: 5_000, describe: 'How long an idle kept-alive connection stays open' },
  connectionsCheckingIntervalMs: { default: 1_000, describe: "How often the header and request timeouts are checked (Node's default is 30 s)" },
} as const satisfies Record<string, Limit>;

type LimitName = keyof typeof LIMITS;
/** The limits a flag sets. */
type FlagLimitName = { [K in LimitName]: (typeof LIMITS)[K] extends { flag: string } ? K : never }[LimitName];

/** The CLI flag of a limit: its help text and default (a size as the user would write it, e.g. 32mb). */
export function limitOption(name: FlagLimitName): ToolOption {
  const limit: Limit = LIMITS[name];
  if (limit.value === 'bytes') return { type: 'string', default: formatByteSize(limit.default), describe: limit.describe };
  return { ...(limit.value ? { value: limit.value } : {}), default: limit.default, describe: limit.describe };
}

/** Bytes as parseByteSize reads them: 32mb for 32 MiB, in the largest unit that divides them. */
export function formatByteSize(bytes: number): string {
  for (const [unit, size] of [
    ['gb', 1024 ** 3],
    ['mb', 1024 ** 2],
    ['kb', 1024],
  ] as const) {
    if (bytes >= size && bytes % size === 0) return `${bytes / size}${unit}`;
  }
  return String(bytes);
}
