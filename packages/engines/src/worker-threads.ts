import { parentPort, Worker } from 'node:worker_threads';
import { silentLogger, type Logger } from '@imgpipe/kit';

/** A worker's log line, written by the parent to its logger. */
export type WorkerLog = { type: 'log'; level: 'debug' | 'info' | 'warn'; message: string };

/**
 * Start the worker entry `entry` that sits beside the module at `moduleUrl` (pass import.meta.url): from dist/ the
 * .js file; from sources (tests, benchmarks under tsx) the .ts file through a bootstrap that registers tsx in the worker.
 */
export function startWorkerThread(moduleUrl: string, entry: string, workerData: unknown): Worker {
  if (!moduleUrl.endsWith('.ts')) return new Worker(new URL(`./${entry}.js`, moduleUrl), { workerData });
  const tsx = import.meta.resolve('tsx/esm/api');
  const source = new URL(`./${entry}.ts`, moduleUrl).href;
  const bootstrap = `import(${JSON.stringify(tsx)}).then((m) => { m.register(); return import(${JSON.stringify(source)}); });`;
  return new Worker(bootstrap, { eval: true, workerData });
}

/** Parent side: a worker's log messages go to `log`. */
export function forwardWorkerLogs(worker: Worker, log: Logger): void {
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
