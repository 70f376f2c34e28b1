import type { Worker } from 'node:worker_threads';
import { FailureError, InputError, UsageError, silentLogger, type Logger } from '@imgpipe/kit';
import { PendingReplies, startWorkers, type WorkerFailure, type WorkerLog } from '@imgpipe/kit';

/** What a backbone worker says once its model is loaded; the rest is the worker kind's own. */
export interface WorkerReady {
  type: 'ready';
  inputSize: number;
}
export type WorkerRequest = { id: number; pixels: Uint8Array; count: number };
export type WorkerReply<Ready extends WorkerReady = WorkerReady> =
  | Ready
  /** `pixels`: the request's, handed back for the next batch. */
  | { type: 'result'; id: number; features: Float32Array; pixels: Uint8Array }
  | (WorkerFailure & { usage: boolean })
  | WorkerLog;

/** The worker entries of this package: each loads a model from its workerData and turns pixels into features. */
type WorkerEntry = 'backbone-tfjs-worker' | 'backbone-onnx-worker';

/** Worker threads each holding the model; a batch goes to the first idle one. */
export class WorkerPool<Ready extends WorkerReady> {
  private idle: Worker[] = [];
  private waiting: ((worker: Worker) => void)[] = [];
  private readonly pending = new PendingReplies<Float32Array>();
  private broken: Error | undefined;
  private closing = false;
  /**
   * Batch buffers the threads handed back, for the next batches: a new one per batch is external memory that makes
   * V8 collect garbage (a served batch of ResNet50 is 2-5 MB).
   */
  private readonly spareInputs: ArrayBuffer[] = [];

  private constructor(
    private readonly workers: Worker[],
    readonly ready: Ready,
    private readonly what: string,
    private readonly stop: () => Promise<void>,
  ) {
    this.idle = [...workers];
    for (const worker of workers) {
      worker.on('message', (reply: WorkerReply<Ready>) => {
        if (reply.type !== 'result' && reply.type !== 'error') return;
        if (reply.type === 'result' && this.spareInputs.length < 2 * this.workers.length) this.spareInputs.push(reply.pixels.buffer as ArrayBuffer);
        const outcome =
          reply.type === 'result' ? { value: reply.features } : { error: new FailureError(`${this.what}: worker failed: ${reply.message}`) };
        if (this.pending.settle(reply.id, outcome)) this.release(worker);
      });
      worker.on('error', (error) => this.failAll(error));
      worker.on('exit', (code) => {
        if (!this.closing) this.failAll(new Error(`a worker exited with code ${code}`));
      });
    }
  }

  /** Start `count` workers of `entry` and wait until each has loaded its model; `what` names the model in errors. */
  static async start<Ready extends WorkerReady>(
    entry: WorkerEntry,
    count: number,
    init: unknown,
    what: string,
    log: Logger = silentLogger,
  ): Promise<WorkerPool<Ready>> {
    const refused = (message: string, usage: boolean) => (usage ? new UsageError(message) : new InputError(message));
    const { workers, ready, stop } = await startWorkers<Ready>({ moduleUrl: import.meta.url, entry, count, workerData: init, what, log, refused });
    return new WorkerPool(workers, ready[0]!, what, stop);
  }

  async run(pixels: Uint8Array, count: number): Promise<Float32Array> {
    if (this.broken) throw this.broken;
    const worker = this.idle.pop() ?? (await new Promise<Worker>((resolve) => this.waiting.push(resolve)));
    if (this.broken) throw this.broken;
    const { id, answer } = this.pending.add();
    const bytes = count * this.ready.inputSize ** 2 * 3;
    const input = new Uint8Array(this.inputBuffer(bytes), 0, bytes);
    input.set(pixels.subarray(0, bytes));
    worker.postMessage({ id, pixels: input, count } satisfies WorkerRequest, [input.buffer as ArrayBuffer]);
    return answer;
  }

  private inputBuffer(bytes: number): ArrayBuffer {
    const index = this.spareInputs.findIndex((buffer) => buffer.byteLength >= bytes);
    return index >= 0 ? this.spareInputs.splice(index, 1)[0]! : new ArrayBuffer(bytes);
  }

  private release(worker: Worker) {
    const next = this.waiting.shift();
    if (next) next(worker);
    else this.idle.push(worker);
  }

  private failAll(error: Error) {
    this.broken ??= new FailureError(`${this.what}: a worker crashed: ${error.message}`, { cause: error });
    this.pending.failAll(this.broken);
    for (const waiter of this.waiting.splice(0)) waiter(this.workers[0]!); // they find the pool broken below
  }

  async close() {
    this.closing = true;
    await this.stop();
  }
}
