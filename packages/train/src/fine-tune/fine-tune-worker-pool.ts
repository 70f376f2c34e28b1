import type { Worker } from 'node:worker_threads';
import {
  FailureError,
  PendingReplies,
  silentLogger,
  startWorkers,
  type Logger,
  type PreprocessSpec,
  type WorkerFailure,
  type WorkerLog,
} from '@imgpipe/kit';
import type { BatchNormStatistics, FineTuneMode } from './fine-tune-types.js';

/** What each fine-tuning worker builds: the same model from the same files as fineTune does in-process. */
export interface FineTuneWorkerInit {
  backboneModelJson: string;
  headModelJson: string;
  featureLayer: string;
  mode: FineTuneMode;
  bnStatistics: BatchNormStatistics;
  lr: number;
  inputSize: number;
  preprocess: PreprocessSpec;
  classes: number;
}

export interface FineTuneWorkerReady {
  type: 'ready';
  trainedParameters: number;
  /** Floats of every layer's output per image (fine-tune-memory's heap estimate). */
  outputFloatsPerImage: number;
  /** The trainable variables, in the order of every gradient list. */
  variables: string[];
}

export type FineTuneRequest =
  | { type: 'step'; pixels: Uint8Array; oneHot: Float32Array; count: number }
  | { type: 'apply'; gradients: Float32Array[]; lr: number }
  | { type: 'bn-stats' }
  | { type: 'set-bn-stats'; stats: Float32Array[] }
  /** sha256 of the trainable weights, which the same steps keep the same in every worker. */
  | { type: 'digest' }
  | { type: 'predict'; pixels: Uint8Array; count: number }
  | { type: 'save'; outDir: string };

/** A step on a shard: its mean loss and accuracy, and the gradients of the mean loss (none for an empty shard). */
export interface ShardStep {
  count: number;
  loss: number;
  accuracy: number;
  gradients: Float32Array[] | null;
  /** tf.memory().numTensors in the worker after the step. */
  tensors: number;
}

export type FineTuneReply = FineTuneWorkerReady | { type: 'result'; id: number; value: unknown } | WorkerFailure | WorkerLog;

/**
 * Worker threads that each hold the fine-tuning model on their own TF.js wasm instance and take requests one at a
 * time, in order. A worker that fails (an error, a crash, an exit) fails every request and stops them all.
 */
export class FineTuneWorkers {
  private readonly pending = new PendingReplies();
  private broken: Error | undefined;
  private closing = false;

  private constructor(
    private readonly workers: Worker[],
    readonly ready: FineTuneWorkerReady,
    private readonly stop: () => Promise<void>,
  ) {
    for (const worker of workers) {
      worker.on('message', (reply: FineTuneReply) => {
        if (reply.type === 'result') this.pending.settle(reply.id, { value: reply.value });
        else if (reply.type === 'error') this.fail(new FailureError(`a fine-tuning worker failed: ${reply.message}`));
      });
      worker.on('error', (error) => this.fail(new FailureError(`a fine-tuning worker crashed: ${error.message}`, { cause: error })));
      worker.on('exit', (code) => this.fail(new FailureError(`a fine-tuning worker exited with code ${code}`)));
    }
  }

  get count(): number {
    return this.workers.length;
  }

  /** Start `count` workers and wait until each has built its model. */
  static async start(count: number, init: FineTuneWorkerInit, log: Logger = silentLogger): Promise<FineTuneWorkers> {
    const refused = (message: string) => new FailureError(`a fine-tuning worker failed to build the model: ${message}`);
    const what = 'fine-tuning';
    const { workers, ready, stop } = await startWorkers<FineTuneWorkerReady>({
      moduleUrl: import.meta.url,
      entry: 'fine-tune-worker',
      count,
      workerData: init,
      what,
      log,
      refused,
    });
    if (ready.some((r) => r.variables.join('\n') !== ready[0]!.variables.join('\n'))) {
      await stop();
      throw new FailureError('fine-tuning workers built models with different trainable variables');
    }
    return new FineTuneWorkers(workers, ready[0]!, stop);
  }

  /** Send one request to worker `index` (buffers in `transfer` move to it) and wait for its answer. */
  request<T>(index: number, message: FineTuneRequest, transfer: ArrayBuffer[] = []): Promise<T> {
    if (this.broken) return Promise.reject(this.broken);
    const { id, answer } = this.pending.add<T>();
    this.workers[index]!.postMessage({ id, ...message }, transfer);
    return answer;
  }

  /** The same request to every worker (buffers copied for each). */
  all<T>(message: (index: number) => { message: FineTuneRequest; transfer?: ArrayBuffer[] }): Promise<T[]> {
    return Promise.all(
      this.workers.map((_, i) => {
        const { message: m, transfer } = message(i);
        return this.request<T>(i, m, transfer);
      }),
    );
  }

  private fail(error: Error) {
    if (this.closing) return;
    this.broken ??= error;
    this.pending.failAll(this.broken);
    void this.close();
  }

  async close(): Promise<void> {
    this.closing = true;
    await this.stop();
  }
}
