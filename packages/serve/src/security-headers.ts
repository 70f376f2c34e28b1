/**
 * Headers on every answer. The page's policy: scripts and styles only from this server (no inline code, no
 * eval), pictures also from blob: (the user's own files) and data: (the empty favicon), no framing.
 */
export const PAGE_CSP = [
  "default-src 'self'",
  "img-src 'self' blob: data:",
  "object-src 'none'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

export const SECURITY_HEADERS: Readonly<Record<string, string>> = {
  'content-security-policy': PAGE_CSP,
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'x-frame-options': 'DENY',
};
