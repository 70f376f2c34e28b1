import type { IncomingMessage } from 'node:http';
import type { ImageFormat } from '@imgpipe/images';
import type { EchoMode } from './annotate.js';
import type { ByteBudget } from './body.js';
import type { Classifier } from './classifier.js';
import type { Registry } from './metrics.js';
import type { UiState } from './ui-assets.js';

/** What a route answers; the server writes it. */
export interface Reply {
  status: number;
  body: unknown;
  /** Sent as is when a string (metrics) or a Buffer (the page's files), JSON otherwise. */
  contentType?: string;
  headers?: Record<string, string>;
  /** Images classified, for the request log. */
  images?: number;
}

export interface RouteContext {
  request: IncomingMessage;
  /** Path parameters, e.g. {name} of /v2/models/{name}/infer. */
  params: Record<string, string>;
}

export interface AppState {
  /** Set once the model is loaded and warmed up. */
  classifier: Classifier | undefined;
  modelName: string;
  modelVersion: string | undefined;
  shuttingDown: boolean;
  maxBody: number;
  maxQueue: number;
  maxPixels: number;
  /** Request safety limits (images and pixels per request, body bytes in flight, echo size, decode time). */
  limits: RequestLimits;
  echo: EchoMode;
  registry: Registry;
  serverVersion: string;
  /** The page for browsers; undefined with --no-ui. */
  ui?: UiState | undefined;
}

/** What one request may cost the server; every field has a flag. */
export interface RequestLimits {
  /** Images in one request (--max-images). */
  maxImages: number;
  /** Decoded pixels (width x height, from the headers) summed over one request's images (--max-request-pixels). */
  maxRequestPixels: number;
  /** Formats accepted, by their signature (--formats). */
  formats: readonly ImageFormat[];
  /** Bodies held at once across requests (--max-inflight-bytes); 503 beyond it, before reading. */
  bodyBudget: ByteBudget;
  /** Largest annotated echo in pixels; bigger images are scaled down to fit (--max-echo-pixels). */
  maxEchoPixels: number;
  /** Per decode, where libvips can stop (--decode-timeout). */
  decodeTimeoutSeconds: number;
}
