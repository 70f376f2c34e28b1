import { createRequire } from 'node:module';

/** cli-progress (CommonJS) loads when a bar is drawn (stderr a terminal), not with kit: start-up time of every tool. */
const loadCliProgress = () => createRequire(import.meta.url)('cli-progress') as typeof import('cli-progress');

export type ProgressStatus = 'start' | 'progress' | 'done';

export interface ProgressEvent {
  status: ProgressStatus;
  label: string;
  done: number;
  total: number | undefined;
  /** Extra counters shown after the bar (bytes, rate, metrics). */
  detail?: string;
}

export interface Progress {
  /** Set the absolute amount done (never decreases). */
  update(done: number, detail?: string): void;
  increment(by?: number, detail?: string): void;
  finish(detail?: string): void;
}

interface ProgressOptions {
  label: string;
  total?: number;
  unit?: string;
  stream?: NodeJS.WriteStream | NodeJS.WritableStream;
  quiet?: boolean;
  /** Seconds between plain lines when stderr is not a terminal. */
  intervalSeconds?: number;
  onEvent?: (event: ProgressEvent) => void;
}

/**
 * Progress on stderr: a cli-progress bar on a TTY, otherwise a short line every few seconds.
 * cli-progress is used for the bar so that redraws and ETA match what users know from other tools.
 */
export function createProgress(options: ProgressOptions): Progress {
  const { label, total, unit = 'items', quiet = false, intervalSeconds = 5, onEvent } = options;
  const stream = (options.stream ?? process.stderr) as NodeJS.WriteStream;
  const started = Date.now();
  let done = 0;
  let lastLine = started;
  let finished = false;
  const emit = (status: ProgressStatus, detail?: string) => onEvent?.({ status, label, done, total, ...(detail === undefined ? {} : { detail }) });

  const cliProgress = !quiet && stream.isTTY ? loadCliProgress() : undefined;
  const bar = cliProgress
    ? new cliProgress.SingleBar(
        {
          stream,
          // Without a total (a CSV still being read) there is no bar to fill: the count, the rate and the detail.
          format:
            total === undefined
              ? `${label} {value} ${unit} | {rate}/s {detail}`
              : `${label} [{bar}] {percentage}% | {value}/{total} ${unit} | {rate}/s | ETA {eta_formatted} {detail}`,
          hideCursor: false,
          clearOnComplete: false,
          etaBuffer: 50,
        },
        cliProgress.Presets.shades_classic,
      )
    : undefined;
  bar?.start(total ?? 0, 0, { rate: '0', detail: '' });
  emit('start');

  const line = (detail?: string) => {
    const seconds = (Date.now() - started) / 1000;
    const rate = seconds > 0 ? done / seconds : 0;
    const of = total === undefined ? '' : `/${total}`;
    const eta = total !== undefined && rate > 0 ? ` eta ${formatSeconds((total - done) / rate)}` : '';
    stream.write(`${label}: ${done}${of} ${unit} ${rate.toFixed(1)}/s${eta}${detail ? ` ${detail}` : ''}\n`);
  };

  const update = (value: number, detail?: string) => {
    if (finished) return;
    done = Math.max(done, value);
    if (bar) {
      const seconds = (Date.now() - started) / 1000;
      bar.update(done, { rate: seconds > 0 ? (done / seconds).toFixed(1) : '0', detail: detail ?? '' });
    } else if (!quiet && Date.now() - lastLine >= intervalSeconds * 1000) {
      lastLine = Date.now();
      line(detail);
    }
    emit('progress', detail);
  };

  return {
    update,
    increment: (by = 1, detail) => update(done + by, detail),
    finish(detail) {
      if (finished) return;
      if (total !== undefined) done = Math.max(done, total);
      if (bar) {
        bar.update(done, { detail: detail ?? '' });
        bar.stop();
      } else if (!quiet) {
        line(detail);
      }
      finished = true;
      emit('done', detail);
    },
  };
}

export function formatSeconds(seconds: number): string {
  if (!Number.isFinite(seconds)) return '?';
  if (seconds < 60) return `${seconds.toFixed(0)}s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) return `${minutes}m${Math.round(seconds % 60)}s`;
  return `${Math.floor(minutes / 60)}h${minutes % 60}m`;
}
