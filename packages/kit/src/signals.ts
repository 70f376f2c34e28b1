import { constants } from 'node:os';
import { basename } from 'node:path';
import { removeTrackedSync } from './temp-files.js';

/** A tool stops on either: at once, removing its temp files (exitCleanlyOnSignals), or by aborting its work (stopOnSignals). */
const STOP_SIGNALS = ['SIGINT', 'SIGTERM'] as const;

/** The status a shell reports for a process ended by `signal`: 128 + its number (SIGINT 130, SIGTERM 143). */
export function signalExitCode(signal: NodeJS.Signals): number {
  return 128 + constants.signals[signal];
}

let installed = false;

/**
 * On SIGINT or SIGTERM: remove tracked temp files and locks, then exit 130 or 143 (128 + signal), as a shell
 * reports a process the signal killed. Installed once by each tool that writes files.
 */
export function exitCleanlyOnSignals(): void {
  if (installed) return;
  installed = true;
  const handler = (signal: NodeJS.Signals) => {
    removeTrackedSync();
    process.stderr.write(`${basename(process.argv[1] ?? 'imgpipe').replace(/\.[cm]?[jt]s$/, '')}: stopped by ${signal}; temp files removed\n`);
    process.exit(signalExitCode(signal));
  };
  for (const signal of STOP_SIGNALS) process.on(signal, handler);
  process.on('exit', removeTrackedSync);
}

/** What stopOnSignals hands back: the signal to pass to the work, and dispose() to remove the handlers after it. */
export interface SignalStop {
  /** Aborted by the first SIGINT or SIGTERM, with the signal's name as its reason. */
  signal: AbortSignal;
  /** The exit status for the signal that stopped the work (130 / 143), undefined when none did. */
  exitCode(): number | undefined;
  dispose(): void;
}

/**
 * For work that stops gracefully (abort what is in flight, write nothing final): a SIGINT or SIGTERM calls
 * `onSignal` and aborts `signal`. Each handler runs once; the same signal again ends the process by default.
 */
export function stopOnSignals(onSignal: (signal: NodeJS.Signals) => void = () => {}): SignalStop {
  const controller = new AbortController();
  const handler = (signal: NodeJS.Signals) => {
    onSignal(signal);
    controller.abort(signal);
  };
  for (const signal of STOP_SIGNALS) process.once(signal, handler);
  return {
    signal: controller.signal,
    exitCode: () => (controller.signal.aborted ? signalExitCode(controller.signal.reason as NodeJS.Signals) : undefined),
    dispose: () => {
      for (const signal of STOP_SIGNALS) process.off(signal, handler);
    },
  };
}
