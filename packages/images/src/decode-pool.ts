import type { Worker } from 'node:worker_threads';
import { FailureError, PendingReplies, startWorkers, type WorkerFailure } from '@imgpipe/kit';
import { ImageRejected, type RejectReason } from './image-rejected.js';
import type { DecodeOptions } from './image.js';

export type DecodeRequest = { id: number; path: string; options: DecodeOptions } | { id: number; path: string; identify: true };

/** A file's identity for finding duplicates: its real path (links resolved) and the sha256 of a regular file's bytes. */
export interface FileIdentity {
  real: string;
  /** undefined when it is not a regular file or cannot be read (decoding then says why). */
  content: string | undefined;
}

export type DecodeReply =
  | { type: 'ready' }
  | { type: 'result'; id: number; pixels: Uint8Array }
  | { type: 'identity'; id: number; identity: FileIdentity }
  | { type: 'rejected'; id: number; reason: RejectReason; source: string; detail: string; hint?: string; cause?: string }
  | WorkerFailure;

/** Requests kept in flight per thread, so that a thread never waits for its next request after a result. */
const IN_FLIGHT_PER_THREAD = 2;

/**
 * Threads that each read, decode and resize whole images (decodeToTensorBlocking), or hash files: one message each way per image,
 * where decoding on the main thread hops to libuv's pool and back for the read and the JPEG decode. Same pixels as
 * decodeToTensor; rejections arrive as ImageRejected with the same reason and detail.
 */
export class DecodePool {
  private readonly pending = new PendingReplies<Uint8Array | FileIdentity>();
  private readonly load: number[];
  private broken: Error | undefined;
  private closing = false;

  private constructor(private readonly workers: Worker[]) {
    this.load = workers.map(() => 0);
    workers.forEach((worker, index) => {
      worker.on('message', (reply: DecodeReply) => {
        if (reply.type === 'ready') return;
        this.load[index]! -= 1;
        if (reply.type === 'result') this.pending.settle(reply.id, { value: reply.pixels });
        else if (reply.type === 'identity') this.pending.settle(reply.id, { value: reply.identity });
        else if (reply.type === 'rejected') {
          const cause = reply.cause === undefined ? {} : { cause: new Error(reply.cause) };
          this.pending.settle(reply.id, {
            error: new ImageRejected(reply.reason, reply.source, reply.detail, { ...cause, ...(reply.hint ? { hint: reply.hint } : {}) }),
          });
        } else this.pending.settle(reply.id, { error: new FailureError(`image decoding: a worker failed: ${reply.message}`) });
      });
      worker.on('error', (error) => this.failAll(error));
      worker.on('exit', (code) => {
        if (!this.closing) this.failAll(new Error(`a decode worker exited with code ${code}`));
      });
    });
  }

  /** Start `threads` decode workers and wait until each is ready. */
  static async start(threads: number): Promise<DecodePool> {
    const { workers } = await startWorkers<{ type: 'ready' }>({
      moduleUrl: import.meta.url,
      entry: 'decode-worker',
      count: Math.max(1, threads),
      workerData: undefined,
      what: 'image decoding',
      refused: (message) => new FailureError(`image decoding: a worker could not start: ${message}`),
    });
    return new DecodePool(workers);
  }

  /** How many decodes to keep in flight to keep every thread busy. */
  get concurrency(): number {
    return this.workers.length * IN_FLIGHT_PER_THREAD;
  }

  /** decodeToTensor(path, options) on the least busy thread. */
  decode(path: string, options: DecodeOptions): Promise<Uint8Array> {
    return this.send<Uint8Array>((id) => ({ id, path, options }));
  }

  /** The file's real path and content hash, read on a thread (prep-data's duplicate check reads every file first). */
  identify(path: string): Promise<FileIdentity> {
    return this.send<FileIdentity>((id) => ({ id, path, identify: true }));
  }

  private send<R extends Uint8Array | FileIdentity>(request: (id: number) => DecodeRequest): Promise<R> {
    if (this.broken) return Promise.reject(this.broken);
    let index = 0;
    for (let i = 1; i < this.workers.length; i++) if (this.load[i]! < this.load[index]!) index = i;
    this.load[index]! += 1;
    const { id, answer } = this.pending.add<R>();
    this.workers[index]!.postMessage(request(id));
    return answer;
  }

  private failAll(error: Error) {
    this.broken ??= new FailureError(`image decoding: a worker crashed: ${error.message}`, { cause: error });
    this.pending.failAll(this.broken);
  }

  async close(): Promise<void> {
    this.closing = true;
    await Promise.all(this.workers.map((worker) => worker.terminate()));
  }
}
