/** Exit codes shared by every tool: 0 ok, 1 failed, 2 bad usage or bad input. */
export const EXIT_OK = 0;
export const EXIT_FAILED = 1;
export const EXIT_USAGE = 2;

export class ImgpipeError extends Error {
  readonly exitCode: number;
  constructor(message: string, exitCode: number, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
    this.exitCode = exitCode;
  }
}

/** A flag, setting or command line that cannot work: exit 2. */
export class UsageError extends ImgpipeError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, EXIT_USAGE, options);
  }
}

/** Input data (a CSV row, a file, a key) that cannot be used: exit 2. */
export class InputError extends ImgpipeError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, EXIT_USAGE, options);
  }
}

/** The work was attempted and failed (network, disk, a failed trial budget): exit 1. */
export class FailureError extends ImgpipeError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, EXIT_FAILED, options);
  }
}

export function exitCodeOf(error: unknown): number {
  return error instanceof ImgpipeError ? error.exitCode : EXIT_FAILED;
}

/** The message of any thrown value, without its stack. */
export function messageOf(error: unknown): string {
  if (error instanceof Error) return error.message || error.name;
  return String(error);
}
