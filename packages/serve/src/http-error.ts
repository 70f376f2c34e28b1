/**
 * An error that becomes an HTTP answer: the status, a one-line message, and for bad items the item it names.
 * Route code throws these; the server turns them into `{"error": message, "item"?: ...}` JSON bodies.
 */
export class HttpError extends Error {
  readonly status: number;
  readonly item: string | undefined;
  readonly headers: Record<string, string>;
  /** Extra fields for the JSON answer, e.g. {reason: 'decompression-bomb'}. */
  readonly details: Record<string, unknown>;
  constructor(
    status: number,
    message: string,
    options: { item?: string; headers?: Record<string, string>; details?: Record<string, unknown>; cause?: unknown } = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'HttpError';
    this.status = status;
    this.item = options.item;
    this.headers = options.headers ?? {};
    this.details = options.details ?? {};
  }

  /** The JSON answer: {"error": message, "item"?: name, ...details}. */
  toJSON(): Record<string, unknown> {
    return { error: this.message, ...(this.item === undefined ? {} : { item: this.item }), ...this.details };
  }
}

/** The queue is full (or the server is not ready or is shutting down): 503 with Retry-After. */
export class UnavailableError extends HttpError {
  constructor(message: string, retryAfterSeconds = 1) {
    super(503, message, { headers: { 'retry-after': String(retryAfterSeconds) } });
    this.name = 'UnavailableError';
  }
}
