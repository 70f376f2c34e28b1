import type { ImageFormat } from '@imgpipe/images';
import type { ByteBudget } from './body.js';

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

export const DEFAULT_LIMITS = {
  maxImages: 64,
  maxRequestPixels: 256_000_000,
  maxInflightBytes: 256 * 1024 ** 2,
  maxEchoPixels: 4_000_000,
  decodeTimeoutSeconds: 10,
} as const;
