import type { Worker } from 'node:worker_threads';
import { FailureError, InputError, UsageError, silentLogger, type Logger } from '@imgpipe/kit';
import { forwardWorkerLogs, startWorkerThread, type WorkerLog } from './worker-threads.js';

/** What a backbone worker says once its model is loaded; the rest is the worker kind's own. */
export interface WorkerReady {
  type: 'ready';
  inputSize: number;
}
export type WorkerRequest = { id: number; pixels: Uint8Array; count: number };
export type WorkerReply<Ready extends WorkerReady = WorkerReady> =
  | Ready
  | { type: 'result'; id: number; features: Float32Array }
  | { type: 'error'; id: number; message: string; usage: boolean }
  | WorkerLog;

/** The worker entries of this package: each loads a model from its workerData and turns pixels into features. */
export type WorkerEntry = 'backbone-tfjs-worker' | 'backbone-onnx-worker';

/** Worker threads each holding the model; a batch goes to the first idle one. */
export class WorkerPool<Ready extends WorkerReady> {
  private idle: Worker[] = [];
  private waiting: ((worker: Worker) => void)[] = [];
  private pending = new Map<number, { resolve: (f: Float32Array) => void; reject: (e: Error) => void }>();
  private nextId = 0;
  private broken: Error | undefined;
  private closing = false;

  private constructor(
    private readonly workers: Worker[],
    readonly ready: Ready,
    private readonly what: string,
  ) {
    this.idle = [...workers];
    for (const worker of workers) {
      worker.on('message', (reply: WorkerReply<Ready>) => {
        if (reply.type === 'ready' || reply.type === 'log') return;
        const task = this.pending.get(reply.id);
        if (!task) return;
        this.pending.delete(reply.id);
        if (reply.type === 'result') task.resolve(reply.features);
        else task.reject(new FailureError(`${this.what}: worker failed: ${reply.message}`));
        this.release(worker);
      });
      worker.on('error', (error) => this.failAll(error));
      worker.on('exit', (code) => {
        if (!this.closing) this.failAll(new Error(`a worker exited with code ${code}`));
      });
    }
  }

  /** Start `count` workers of `entry` and wait until each has loaded its model; `what` names the model in errors. */
  static async start<Ready extends WorkerReady>(entry: WorkerEntry, count: number, init: unknown, what: string, log: Logger = silentLogger): Promise<WorkerPool<Ready>> {
    const workers = Array.from({ length: count }, () => startWorkerThread(import.meta.url, entry, init));
    for (const worker of workers) forwardWorkerLogs(worker, log);
    try {
      const replies = await Promise.all(
        workers.map(
          (worker) =>
            new Promise<Ready>((resolve, reject) => {
              const onMessage = (reply: WorkerReply<Ready>) => {
                if (reply.type === 'log') return;
                worker.off('message', onMessage);
                if (reply.type === 'ready') resolve(reply);
                else if (reply.type === 'error') reject(reply.usage ? new UsageError(reply.message) : new InputError(reply.message));
              };
              worker.on('message', onMessage);
              worker.once('error', reject);
              worker.once('exit', (code) => reject(new FailureError(`a worker exited with code ${code} while loading ${what}`)));
            }),
        ),
      );
      return new WorkerPool(workers, replies[0]!, what);
    } catch (error) {
      await Promise.all(workers.map((w) => w.terminate()));
      throw error;
    }
  }

  async run(pixels: Uint8Array, count: number): Promise<Float32Array> {
    if (this.broken) throw this.broken;
    const worker = this.idle.pop() ?? (await new Promise<Worker>((resolve) => this.waiting.push(resolve)));
    if (this.broken) throw this.broken;
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      const copy = pixels.slice(0, count * this.ready.inputSize ** 2 * 3);
      worker.postMessage({ id, pixels: copy, count } satisfies WorkerRequest, [copy.buffer]);
    });
  }

  private release(worker: Worker) {
    const next = this.waiting.shift();
    if (next) next(worker);
    else this.idle.push(worker);
  }

  private failAll(error: Error) {
    this.broken ??= new FailureError(`${this.what}: a worker crashed: ${error.message}`, { cause: error });
    for (const task of this.pending.values()) task.reject(this.broken);
    this.pending.clear();
    for (const waiter of this.waiting.splice(0)) waiter(this.workers[0]!); // they find the pool broken below
  }

  async close() {
    this.closing = true;
    await Promise.all(this.workers.map((w) => w.terminate()));
  }
}
