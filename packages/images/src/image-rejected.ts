import { InputError } from '@imgpipe/kit/errors';

export type RejectReason =
  | 'missing'
  | 'empty'
  | 'not-an-image'
  | 'unsupported-format'
  | 'unreadable'
  | 'too-large'
  | 'too-slow'
  | 'decompression-bomb';

/** An input that cannot become pixels; `reason` says why (a RejectReason) (exit 2 when it ends a tool). */
export class ImageRejected extends InputError {
  readonly reason: RejectReason;
  readonly source: string;
  /** The message without the source and reason, e.g. for a rejected.csv column; says nothing about settings. */
  readonly detail: string;
  /** Advice for whoever runs the tool (a flag to raise), kept apart so a server can log it rather than send it. */
  readonly hint: string | undefined;
  constructor(reason: RejectReason, source: string, detail: string, options?: { cause?: unknown; hint?: string }) {
    super(`${source}: ${reason}: ${detail}${options?.hint ? ` (${options.hint})` : ''}`, options);
    this.reason = reason;
    this.source = source;
    this.detail = detail;
    this.hint = options?.hint;
  }
}
