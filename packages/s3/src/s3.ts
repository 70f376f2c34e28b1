import { Agent as HttpAgent } from 'node:http';
import { Agent as HttpsAgent } from 'node:https';
import { setTimeout as sleep } from 'node:timers/promises';
import { S3Client } from '@aws-sdk/client-s3';
import { NodeHttpHandler } from '@smithy/node-http-handler';
import { type ImgpipeConfig, FailureError, ImgpipeError, InputError, UsageError, messageOf, type Logger } from '@imgpipe/kit';

interface S3ClientOptions {
  /** Parallel requests this client should carry: the HTTP agents keep this many sockets. Default 16. */
  concurrency?: number;
  /**
   * Attempts made by the SDK itself (default 3). The transfer helpers here retry on their own (including a body
   * that breaks mid-stream, which the SDK cannot retry), so tools that use them pass 1.
   */
  maxAttempts?: number;
  /** Milliseconds to wait for a TCP connection. Default 10 s. */
  connectionTimeoutMs?: number;
  /** Milliseconds a socket may sit idle while waiting for a response. Default 60 s. */
  requestTimeoutMs?: number;
}

/**
 * The one S3 client factory. Region from `aws.aws_default_region`; credentials from the config's keys when both
 * are set, otherwise the SDK's standard chain (env, profile, SSO, instance role). `aws.endpoint` selects an
 * S3-compatible store: path-style addressing, and checksums only where an operation requires them (older
 * S3-compatible servers reject or mangle the aws-chunked trailing checksums newer SDKs send by default).
 */
export function createS3Client(aws: ImgpipeConfig['aws'], options: S3ClientOptions = {}): S3Client {
  const concurrency = Math.max(1, options.concurrency ?? 16);
  const agentOptions = { keepAlive: true, maxSockets: concurrency, maxFreeSockets: concurrency };
  const endpoint = aws.endpoint.trim();
  if (endpoint && !/^https?:\/\//.test(endpoint)) {
    throw new UsageError(`expected --endpoint (aws.endpoint) to be an http:// or https:// URL, got '${endpoint}'`);
  }
  const keyId = aws.aws_access_key_id;
  const secret = aws.aws_secret_access_key;
  if (Boolean(keyId) !== Boolean(secret)) {
    throw new UsageError('set both aws.aws_access_key_id and aws.aws_secret_access_key, or neither (to use the standard AWS chain)');
  }
  return new S3Client({
    region: aws.aws_default_region || 'us-east-1',
    maxAttempts: options.maxAttempts ?? 3,
    ...(keyId && secret ? { credentials: { accessKeyId: keyId, secretAccessKey: secret } } : {}),
    ...(endpoint
      ? {
          endpoint,
          forcePathStyle: true,
          requestChecksumCalculation: 'WHEN_REQUIRED' as const,
          responseChecksumValidation: 'WHEN_REQUIRED' as const,
        }
      : {}),
    requestHandler: new GuardedHttpHandler({
      httpAgent: new HttpAgent(agentOptions),
      httpsAgent: new HttpsAgent(agentOptions),
      connectionTimeout: options.connectionTimeoutMs ?? 10_000,
      requestTimeout: options.requestTimeoutMs ?? 60_000,
      // Without this the handler only warns and a request whose answer never comes hangs forever.
      throwOnRequestTimeout: true,
    }),
  });
}

/**
 * NodeHttpHandler, plus an 'error' listener on each response body the moment it exists. A connection that breaks
 * after the headers destroys the body with an error, possibly before the SDK hands the body to our code; without
 * a listener that error would be an uncaught exception. Consumers still see it (`errored`, their own listeners).
 */
class GuardedHttpHandler extends NodeHttpHandler {
  override async handle(...args: Parameters<NodeHttpHandler['handle']>): ReturnType<NodeHttpHandler['handle']> {
    const result = await super.handle(...args);
    const body = result.response.body as { on?: (event: string, listener: () => void) => void } | undefined;
    if (body && typeof body.on === 'function') body.on('error', () => undefined);
    return result;
  }
}

interface S3Uri {
  bucket: string;
  /** The key (may be empty for a bucket root, or end with '/' for a prefix). */
  key: string;
}

export function isS3Uri(text: string): boolean {
  return text.startsWith('s3://');
}

/** `s3://bucket/key` -> { bucket, key }. A UsageError names the text when it is not one. */
export function parseS3Uri(uri: string, what = 'S3 URI'): S3Uri {
  const match = /^s3:\/\/([^/]+)(?:\/(.*))?$/s.exec(uri);
  if (!match?.[1] || !isBucketName(match[1])) throw new UsageError(`expected ${what} of the form s3://bucket/key, got '${uri}'`);
  return { bucket: match[1], key: match[2] ?? '' };
}

/**
 * A name that can only address a bucket: letters, digits, dots, hyphens and underscores (older buckets and other
 * stores allow capitals and '_'), starting and ending with a letter or digit. Anything else ('..', 'a/../b', 'a?x')
 * would change the request's path in path-style addressing.
 */
export function isBucketName(name: string): boolean {
  return /^[A-Za-z0-9](?:[A-Za-z0-9._-]{0,253}[A-Za-z0-9])?$/.test(name) && !name.includes('..');
}

export function formatS3Uri(bucket: string, key: string): string {
  return `s3://${bucket}/${key}`;
}

/** Join key parts with single slashes: ('results/', '/model', 'card.json') -> 'results/model/card.json'. */
export function joinKey(...parts: string[]): string {
  return parts
    .filter((part) => part !== '')
    .map((part, index) => (index === 0 ? part.replace(/\/+$/, '') : part.replace(/^\/+|\/+$/g, '')))
    .filter((part) => part !== '')
    .join('/');
}

// ---------------------------------------------------------------------------------------------------------
// Errors: what went wrong, on which object, and what to do about it.

interface SdkErrorShape {
  name?: string;
  code?: string;
  Code?: string;
  message?: string;
  $metadata?: { httpStatusCode?: number };
  $retryable?: unknown;
  cause?: unknown;
}

function statusOf(error: unknown): number | undefined {
  return (error as SdkErrorShape | undefined)?.$metadata?.httpStatusCode;
}

/** The S3 error code or Node system error code of an error (or of its cause). */
export function s3ErrorCode(error: unknown): string {
  const e = error as SdkErrorShape | undefined;
  if (!e || typeof e !== 'object') return '';
  const code = e.Code ?? (typeof e.code === 'string' ? e.code : undefined);
  if (code) return code;
  if (e.name && e.name !== 'Error' && e.name !== 'S3ServiceException') return e.name;
  return e.cause ? s3ErrorCode(e.cause) : '';
}

const RETRYABLE_CODES = new Set([
  'SlowDown',
  'ServiceUnavailable',
  'InternalError',
  'RequestTimeout',
  'RequestTimeoutException',
  'Throttling',
  'ThrottlingException',
  'TooManyRequestsException',
  'RequestLimitExceeded',
  'BandwidthLimitExceeded',
  'TimeoutError',
  'ECONNRESET',
  'ECONNREFUSED',
  'EPIPE',
  'ETIMEDOUT',
  'ECONNABORTED',
  'EAI_AGAIN',
  'ENETUNREACH',
  'EHOSTUNREACH',
  'ERR_STREAM_PREMATURE_CLOSE',
  'UND_ERR_SOCKET',
  'StalledBody',
  'TruncatedBody',
  'CorruptBody',
]);

/** Throttling, 5xx, connection resets, timeouts, stalled, truncated or corrupted bodies: worth another try. */
export function isRetryableS3Error(error: unknown): boolean {
  if (error instanceof ImgpipeError) return false;
  const status = statusOf(error);
  if (status !== undefined && (status >= 500 || status === 429)) return true;
  const code = s3ErrorCode(error);
  if (RETRYABLE_CODES.has(code)) return true;
  const e = error as SdkErrorShape;
  if (e?.$retryable) return true;
  const message = messageOf(error);
  if (/socket hang up|aborted|ECONNRESET|EPIPE|premature close|timed? ?out|other side closed/i.test(message)) return true;
  // A 4xx answer is definitive; anything else without a status (an unparseable reply) is worth one more look.
  if (status !== undefined) return false;
  return e?.cause !== undefined ? isRetryableS3Error(e.cause) : false;
}

interface S3ErrorContext {
  bucket: string;
  key?: string;
  /** What was being done: 'download', 'upload', 'list', 'read'. */
  action?: string;
  endpoint?: string;
}

/**
 * Turn an SDK or network error into an ImgpipeError whose message names the object, the cause, and the fix.
 * Missing objects and buckets are input errors (exit 2); refused credentials, denied access and unreachable
 * endpoints are failures (exit 1). The original error is kept as `cause`.
 */
export function describeS3Error(error: unknown, context: S3ErrorContext): ImgpipeError {
  if (error instanceof ImgpipeError) return error;
  const where = context.key === undefined ? `s3://${context.bucket}` : formatS3Uri(context.bucket, context.key);
  const action = context.action ? `${context.action} ${where}` : where;
  const code = s3ErrorCode(error);
  const status = statusOf(error);
  const endpoint = context.endpoint ? ` at ${context.endpoint}` : networkTarget(error);
  const options = { cause: error };
  switch (code) {
    case 'NoSuchKey':
    case 'NotFound':
      if (context.key !== undefined) return new InputError(`${action}: no such key (check the key, or the CSV row naming it)`, options);
      break;
    case 'NoSuchBucket':
      return new InputError(`${action}: bucket '${context.bucket}' does not exist${endpoint} (check --bucket or the CSV's bucket column)`, options);
    case 'AccessDenied':
    case 'Forbidden':
    case 'AllAccessDisabled':
      return new FailureError(
        `${action}: access denied (the credentials in use lack permission on this bucket or key; check the IAM policy, AWS_PROFILE, or aws.aws_access_key_id)`,
        options,
      );
    case 'InvalidAccessKeyId':
    case 'SignatureDoesNotMatch':
    case 'InvalidToken':
    case 'ExpiredToken':
    case 'TokenRefreshRequired':
      return new FailureError(
        `${action}: the credentials were refused (${code}); set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, AWS_PROFILE, or aws.aws_access_key_id / aws.aws_secret_access_key`,
        options,
      );
    case 'CredentialsProviderError':
      return new UsageError(
        `${action}: no AWS credentials found; set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, AWS_PROFILE, or aws.aws_access_key_id / aws.aws_secret_access_key`,
        options,
      );
    case 'ECONNREFUSED':
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
      return new FailureError(
        `${action}: cannot reach the S3 endpoint${endpoint || ' (AWS)'} (${code}); check --endpoint / S3_ENDPOINT and the network`,
        options,
      );
  }
  if (status === 404 && context.key !== undefined) {
    return new InputError(`${action}: no such key (check the key, or the CSV row naming it)`, options);
  }
  if (status === 403) {
    return new FailureError(`${action}: access denied (HTTP 403; check the credentials and the bucket policy)`, options);
  }
  const detail = [code, status ? `HTTP ${status}` : ''].filter(Boolean).join(', ');
  return new FailureError(`${action} failed${detail ? ` (${detail})` : ''}: ${messageOf(error)}`, options);
}

/** ' at host:port' from a Node network error (or its cause), else ''. */
function networkTarget(error: unknown): string {
  const e = error as { address?: string; port?: number; hostname?: string; cause?: unknown } | undefined;
  if (!e || typeof e !== 'object') return '';
  if (e.address) return ` at ${e.address}${e.port ? `:${e.port}` : ''}`;
  if (e.hostname) return ` at ${e.hostname}`;
  return e.cause ? networkTarget(e.cause) : '';
}

const SYSTEMIC_CODES = new Set([
  'InvalidAccessKeyId',
  'SignatureDoesNotMatch',
  'InvalidToken',
  'ExpiredToken',
  'TokenRefreshRequired',
  'CredentialsProviderError',
  'ECONNREFUSED',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
]);

/**
 * Whether an error will hit every request alike (refused or missing credentials, an unreachable endpoint), so a
 * batch should stop at once instead of failing each item after its retries.
 */
export function isSystemicS3Error(error: unknown): boolean {
  const code = s3ErrorCode(error);
  if (SYSTEMIC_CODES.has(code)) return true;
  const cause = (error as { cause?: unknown } | undefined)?.cause;
  return cause !== undefined && isSystemicS3Error(cause);
}

// ---------------------------------------------------------------------------------------------------------
// Retries.

export interface RetryOptions {
  /** Retries after the first attempt (default 5). */
  retries?: number;
  /** First backoff ceiling in ms (default 100); doubles each attempt up to `maxDelayMs` (default 5,000). */
  baseDelayMs?: number;
  maxDelayMs?: number;
  log?: Logger;
  /** Names the work in debug lines. */
  what?: string;
  signal?: AbortSignal;
  /** Called before each retry (e.g. to count them). */
  onRetry?: (error: unknown, attempt: number) => void;
}

/**
 * Run `attempt` until it succeeds, retrying retryable S3 errors with full-jitter exponential backoff
 * (a random wait in [0, min(max, base * 2^n)]), which spreads a throttled fleet out instead of synchronising it.
 */
export async function withS3Retries<T>(attempt: (n: number) => Promise<T>, options: RetryOptions = {}): Promise<T> {
  const { retries = 5, baseDelayMs = 100, maxDelayMs = 5_000, log, what = 'S3 request', signal, onRetry } = options;
  for (let n = 0; ; n++) {
    try {
      return await attempt(n);
    } catch (error) {
      if (n >= retries || !isRetryableS3Error(error) || signal?.aborted) throw error;
      const delay = Math.random() * Math.min(maxDelayMs, baseDelayMs * 2 ** n);
      log?.debug('%s: %s; retry %d/%d in %d ms', what, s3ErrorCode(error) || messageOf(error), n + 1, retries, Math.round(delay));
      onRetry?.(error, n + 1);
      await sleep(delay, undefined, signal ? { signal } : undefined);
    }
  }
}
