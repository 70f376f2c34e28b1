import { format } from 'node:util';

type LogLevel = 'debug' | 'info' | 'warn' | 'error';

export interface Logger {
  debug(message: string, ...args: unknown[]): void;
  info(message: string, ...args: unknown[]): void;
  warn(message: string, ...args: unknown[]): void;
  error(message: string, ...args: unknown[]): void;
  readonly quiet: boolean;
  readonly verbose: boolean;
}

interface LoggerOptions {
  name: string;
  quiet?: boolean;
  debug?: boolean;
  stream?: NodeJS.WritableStream;
  /** One JSON object per line ({time, level, name, msg}) instead of plain text, so every line parses. */
  json?: boolean;
}

/** Logs go to stderr, prefixed with the tool's name; stdout is for data only. */
export function createLogger({ name, quiet = false, debug = false, stream = process.stderr, json = false }: LoggerOptions): Logger {
  const write = (level: LogLevel, message: string, args: unknown[]) => {
    const msg = format(message, ...args);
    if (json) stream.write(`${JSON.stringify({ time: new Date().toISOString(), level, name, msg })}\n`);
    else stream.write(`${name}: ${level === 'info' ? '' : `${level}: `}${msg}\n`);
  };
  return {
    quiet,
    verbose: debug,
    debug: (message, ...args) => debug && write('debug', message, args),
    info: (message, ...args) => !quiet && write('info', message, args),
    warn: (message, ...args) => write('warn', message, args),
    error: (message, ...args) => write('error', message, args),
  };
}

/** A logger that drops everything: for library calls and tests that do not care. */
export const silentLogger: Logger = createLogger({ name: 'silent', quiet: true, stream: { write: () => true } as unknown as NodeJS.WritableStream });
