import type { Logger } from '@imgpipe/kit';

export interface AccessRecord {
  method: string;
  path: string;
  route: string;
  status: number;
  ms: number;
  bytesIn: number;
  bytesOut: number;
  images: number;
  remote: string | undefined;
  error?: string;
}

export type AccessLog = (record: AccessRecord) => void;

/**
 * One line per request on stderr: plain through the tool's logger, or one JSON object per line with
 * --json-logs (for log collectors). --quiet silences plain lines; JSON lines follow the same rule.
 */
export function createAccessLog(options: { json: boolean; log: Logger; stream: NodeJS.WritableStream; quiet: boolean }): AccessLog {
  const { json, log, stream, quiet } = options;
  if (quiet) return () => undefined;
  if (json) {
    return (record) => {
      const { bytesIn, bytesOut, ...rest } = record;
      stream.write(
        `${JSON.stringify({ time: new Date().toISOString(), level: record.status >= 500 ? 'error' : 'info', msg: 'request', ...rest, bytes_in: bytesIn, bytes_out: bytesOut })}\n`,
      );
    };
  }
  return (r) => {
    const images = r.images ? ` ${r.images} image${r.images === 1 ? '' : 's'}` : '';
    const error = r.error ? ` - ${r.error}` : '';
    log.info(`${r.remote ?? '-'} ${r.method} ${r.path} ${r.status} ${r.ms.toFixed(1)}ms${images}${error}`);
  };
}

/** A JSON log line for server events (start, ready, stop) with --json-logs, else the logger. */
export function createEventLog(options: {
  json: boolean;
  log: Logger;
  stream: NodeJS.WritableStream;
}): (msg: string, fields?: Record<string, unknown>) => void {
  const { json, log, stream } = options;
  return (msg, fields = {}) => {
    if (json) stream.write(`${JSON.stringify({ time: new Date().toISOString(), level: 'info', msg, ...fields })}\n`);
    else
      log.info(
        `${msg}${
          Object.keys(fields).length
            ? ` ${Object.entries(fields)
                .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`)
                .join(' ')}`
            : ''
        }`,
      );
  };
}
