import type { IncomingMessage } from 'node:http';
import type { EchoMode } from './annotate.js';
import type { Classifier } from './classifier.js';
import type { RequestLimits } from './limits.js';
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
