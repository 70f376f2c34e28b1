import { setTimeout as sleep } from 'node:timers/promises';
import { parentPort, Worker } from 'node:worker_threads';
import { FailureError } from './errors.js';
import { silentLogger, type Logger } from './log.js';
import { GATE_BUSY, GATE_CLOSED, type GatedWorkerData } from './worker-thread.js';

/** A worker's log line, written by the parent to its logger. */
export type WorkerLog = { type: 'log'; level: 'debug' | 'info' | 'warn'; message: string };

/** A worker's answer to a request that failed; id -1 when it could not start. */
export type WorkerFailure = { type: 'error'; id: number; message: string; usage?: boolean };

/**
 * Start the worker entry `entry` that sits beside the module at `moduleUrl` (pass import.meta.url): from dist/ the
 * .js file; from sources (tests, benchmarks under tsx) the .ts file through a bootstrap that registers tsx in the worker.
 */
function startWorkerThread(moduleUrl: string, entry: string, workerData: GatedWorkerData): Worker {
  if (!moduleUrl.endsWith('.ts')) return new Worker(new URL(`./${entry}.js`, moduleUrl), { workerData });
  const tsx = import.meta.resolve('tsx/esm/api');
  const source = new URL(`./${entry}.ts`, moduleUrl).href;
  const bootstrap = `import(${JSON.stringify(tsx)}).then((m) => { m.register(); return import(${JSON.stringify(source)}); });`;
  return new Worker(bootstrap, { eval: true, workerData });
}

/** How to start a set of workers: `what` names them in errors; `refused` turns a worker's own reason not to start into the error. */
export interface WorkerStart {
  moduleUrl: string;
  entry: string;
  count: number;
  workerData: unknown;
  what: string;
  log?: Logger;
  refused(message: string, usage: boolean): Error;
}

/** Threads started together: `stop` ends them all once none is inside its work (worker-thread.ts says why). */
export interface StartedWorkers<Ready> {
  workers: Worker[];
  ready: Ready[];
  stop(): Promise<void>;
}

/**
 * Start `count` threads of an entry, their log lines forwarded, and wait for each one's 'ready' message. If any says
 * why it cannot start, crashes or exits first, every thread is stopped and the start fails. The entry reads its
 * workerData with workerInit() and answers with answerRequests() (@imgpipe/kit/worker-thread).
 */
export async function startWorkers<Ready extends { type: 'ready' }>(start: WorkerStart): Promise<StartedWorkers<Ready>> {
  const gate = new Int32Array(new SharedArrayBuffer(2 * Int32Array.BYTES_PER_ELEMENT));
  const workers = Array.from({ length: start.count }, () => startWorkerThread(start.moduleUrl, start.entry, { gate, init: start.workerData }));
  const stop = stopWhenIdle(workers, gate);
  for (const worker of workers) forwardWorkerLogs(worker, start.log ?? silentLogger);
  const readyOf = (worker: Worker) =>
    new Promise<Ready>((resolve, reject) => {
      const onMessage = (reply: Ready | WorkerFailure | WorkerLog) => {
        if (reply.type === 'ready') resolve(reply);
        else if (reply.type === 'error') reject(start.refused(reply.message, reply.usage ?? false));
        else return;
        worker.off('message', onMessage);
      };
      worker.on('message', onMessage);
      worker.once('error', (error) => reject(new FailureError(`${start.what}: a worker crashed while starting: ${error.message}`, { cause: error })));
      worker.once('exit', (code) => reject(new FailureError(`${start.what}: a worker exited with code ${code} while starting`)));
    });
  try {
    return { workers, ready: await Promise.all(workers.map(readyOf)), stop };
  } catch (error) {
    await stop();
    throw error;
  }
}

/** How long a close waits for a thread to leave its work, and process.exit (which blocks meanwhile) for all of them. */
const CLOSE_PATIENCE_MS = 30_000;
const EXIT_PATIENCE_MS = 5_000;

/** The gates of the threads that are running, closed on process.exit. */
const openGates = new Set<Int32Array>();

function stopWhenIdle(workers: Worker[], gate: Int32Array): () => Promise<void> {
  if (openGates.size === 0) process.on('exit', closeGatesOnExit);
  openGates.add(gate);
  let stopping: Promise<void> | undefined;
  const stop = async () => {
    Atomics.store(gate, GATE_CLOSED, 1);
    const deadline = Date.now() + CLOSE_PATIENCE_MS;
    while (Atomics.load(gate, GATE_BUSY) > 0 && Date.now() < deadline) await sleep(1);
    await Promise.all(workers.map((w) => w.terminate()));
    openGates.delete(gate);
    if (openGates.size === 0) process.off('exit', closeGatesOnExit);
  };
  return () => (stopping ??= stop());
}

/** process.exit ends every thread: first let each one leave its work (this thread blocks until they do). */
function closeGatesOnExit() {
  for (const gate of openGates) Atomics.store(gate, GATE_CLOSED, 1);
  const deadline = Date.now() + EXIT_PATIENCE_MS;
  for (const gate of openGates) {
    for (let busy = Atomics.load(gate, GATE_BUSY); busy > 0 && Date.now() < deadline; busy = Atomics.load(gate, GATE_BUSY)) {
      Atomics.wait(gate, GATE_BUSY, busy, deadline - Date.now());
    }
  }
}

/** Requests sent to worker threads, each waiting for the answer with its id. */
export class PendingReplies<T = unknown> {
  private readonly waiting = new Map<number, { resolve: (value: T) => void; reject: (error: Error) => void }>();
  private nextId = 0;

  /** A new request id, and the promise its answer settles. */
  add<R extends T = T>(): { id: number; answer: Promise<R> } {
    const id = this.nextId++;
    const answer = new Promise<R>((resolve, reject) => this.waiting.set(id, { resolve: resolve as (value: T) => void, reject }));
    return { id, answer };
  }

  /** Settle request `id`; false if no request with that id is waiting. */
  settle(id: number, outcome: { value: T } | { error: Error }): boolean {
    const request = this.waiting.get(id);
    if (!request) return false;
    this.waiting.delete(id);
    if ('error' in outcome) request.reject(outcome.error);
    else request.resolve(outcome.value);
    return true;
  }

  /** Fail every waiting request with `error`. */
  failAll(error: Error): void {
    for (const request of this.waiting.values()) request.reject(error);
    this.waiting.clear();
  }
}

/** Parent side: a worker's log messages go to `log`. */
function forwardWorkerLogs(worker: Worker, log: Logger): void {
  worker.on('message', (message: { type?: string }) => {
    if (message?.type === 'log') {
      const line = message as WorkerLog;
      log[line.level](line.message);
    }
  });
}

/** Worker side: a logger whose lines go to the parent as WorkerLog messages. */
export function parentLogger(): Logger {
  const forward = (level: WorkerLog['level']) => (message: string) => parentPort!.postMessage({ type: 'log', level, message } satisfies WorkerLog);
  return { ...silentLogger, debug: forward('debug'), info: forward('info'), warn: forward('warn') };
}
