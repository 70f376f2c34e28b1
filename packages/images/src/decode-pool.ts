import type { Worker } from 'node:worker_threads';
import { FailureError, PendingReplies, startWorkers, type WorkerFailure } from '@imgpipe/kit';
import { ImageRejected, type RejectReason } from './image-rejected.js';
import type { DecodeOptions, IdentifiedDecode } from './image.js';
import { identifyFile, type FileIdentity } from './file-identity.js';

export type { FileIdentity } from './file-identity.js';

export type DecodeRequest =
  | { id: number; path: string; options: DecodeOptions; into?: Uint8Array; withIdentity?: true }
  | { id: number; identify: string[] };

export type DecodeReply =
  | { type: 'ready' }
  /** `pixels` is missing when they were written into the request's shared `into`; `identity` answers withIdentity. */
  | { type: 'result'; id: number; pixels?: Uint8Array; identity?: FileIdentity }
  | { type: 'identities'; id: number; identities: FileIdentity[] }
  | {
      type: 'rejected';
      id: number;
      reason: RejectReason;
      source: string;
      detail: string;
      hint?: string;
      cause?: string;
      identity?: FileIdentity;
    }
  | WorkerFailure;

/**
 * Requests kept in flight per thread, so that a thread never waits for its next request after a result, even while the
 * calling thread is off the CPU (with as many decode threads as cores, it is the one thread too many). Measured on 2
 * cores, 2,000 photos: prep-data's wall time fell 7% from 2 to 16; 32 gained nothing more.
 */
const IN_FLIGHT_PER_THREAD = 16;

/** Files hashed per message: one message per file cost more than hashing a photo. */
const IDENTIFY_BATCH = 64;

/**
 * Threads that each read, decode and resize whole images (decodeToTensorBlocking): one message each way per image,
 * where decoding on the main thread hops to libuv's pool and back for the read and the JPEG decode. They also hash
 * files, IDENTIFY_BATCH to a message. Same pixels as decodeToTensor; rejections arrive as ImageRejected with the same
 * reason and detail.
 */
export class DecodePool {
  private readonly pending = new PendingReplies<Uint8Array | FileIdentity[] | IdentifiedDecode>();
  /** Requests whose pixels the thread writes into shared memory, by id. */
  private readonly targets = new Map<number, Uint8Array>();
  private readonly load: number[];
  private broken: Error | undefined;
  private closing = false;

  private constructor(
    private readonly workers: Worker[],
    private readonly stop: () => Promise<void>,
  ) {
    this.load = workers.map(() => 0);
    workers.forEach((worker, index) => {
      worker.on('message', (reply: DecodeReply) => {
        if (reply.type === 'ready') return;
        this.load[index]! -= 1;
        const into = this.targets.get(reply.id);
        this.targets.delete(reply.id);
        if (reply.type === 'result') {
          const pixels = reply.pixels ?? into!;
          this.pending.settle(reply.id, { value: reply.identity ? { identity: reply.identity, outcome: { pixels } } : pixels });
        } else if (reply.type === 'identities') this.pending.settle(reply.id, { value: reply.identities });
        else if (reply.type === 'rejected') {
          const cause = reply.cause === undefined ? {} : { cause: new Error(reply.cause) };
          const rejected = new ImageRejected(reply.reason, reply.source, reply.detail, { ...cause, ...(reply.hint ? { hint: reply.hint } : {}) });
          this.pending.settle(reply.id, reply.identity ? { value: { identity: reply.identity, outcome: { rejected } } } : { error: rejected });
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
    const { workers, stop } = await startWorkers<{ type: 'ready' }>({
      moduleUrl: import.meta.url,
      entry: 'decode-worker',
      count: Math.max(1, threads),
      workerData: undefined,
      what: 'image decoding',
      refused: (message) => new FailureError(`image decoding: a worker could not start: ${message}`),
    });
    return new DecodePool(workers, stop);
  }

  get threads(): number {
    return this.workers.length;
  }

  /** How many decodes to keep in flight to keep every thread busy. */
  get concurrency(): number {
    return this.workers.length * IN_FLIGHT_PER_THREAD;
  }

  /**
   * decodeToTensor(path, options) on the least busy thread. With `into` (size * size * 3 bytes of a SharedArrayBuffer)
   * the thread writes the pixels there and the answer is `into`: no buffer is made or moved per image.
   */
  decode(path: string, options: DecodeOptions, into?: Uint8Array): Promise<Uint8Array> {
    return this.sendDecode<Uint8Array>(path, options, into, false);
  }

  /**
   * decode, and the file's identity (identifyFile's) from the same read: decodeFileIdentified on a thread. A rejection
   * is part of the answer, with the identity.
   */
  decodeWithIdentity(path: string, options: DecodeOptions, into?: Uint8Array): Promise<IdentifiedDecode> {
    return this.sendDecode<IdentifiedDecode>(path, options, into, true);
  }

  private sendDecode<R extends Uint8Array | IdentifiedDecode>(
    path: string,
    options: DecodeOptions,
    into: Uint8Array | undefined,
    withIdentity: boolean,
  ) {
    if (into && !(into.buffer instanceof SharedArrayBuffer)) throw new TypeError('DecodePool.decode: `into` must be a view of a SharedArrayBuffer');
    return this.send<R>((id) => {
      if (into) this.targets.set(id, into);
      return { id, path, options, ...(into ? { into } : {}), ...(withIdentity ? { withIdentity: true as const } : {}) };
    });
  }

  /** The files' real paths and content hashes (identifyFile), read on the threads in batches; `onEach` counts them. */
  async identifyAll(paths: readonly string[], onEach?: () => void): Promise<FileIdentity[]> {
    const batches: Promise<FileIdentity[]>[] = [];
    for (let start = 0; start < paths.length; start += IDENTIFY_BATCH) {
      const batch = paths.slice(start, start + IDENTIFY_BATCH);
      batches.push(
        this.send<FileIdentity[]>((id) => ({ id, identify: batch })).then((identities) => {
          if (onEach) for (const _ of identities) onEach();
          return identities;
        }),
      );
    }
    return (await Promise.all(batches)).flat();
  }

  private send<R extends Uint8Array | FileIdentity[] | IdentifiedDecode>(request: (id: number) => DecodeRequest): Promise<R> {
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
    this.targets.clear();
  }

  /** Stop the threads once each has finished the image it is on; requests still queued are never answered. */
  async close(): Promise<void> {
    this.closing = true;
    await this.stop();
  }
}

/**
 * identifyAll on threads that are still starting (DecodePool.start's promise): until they are ready, the calling
 * thread hashes files itself, a few at a time between turns of the event loop, so that their start-up (a tenth of a
 * second) is not waited out; the threads take the rest. Without threads (they failed to start) it hashes them all.
 */
export async function identifyWhileStarting(paths: readonly string[], threads: Promise<DecodePool>, onEach?: () => void): Promise<FileIdentity[]> {
  let ready: DecodePool | undefined;
  let failed = false;
  threads.then(
    (pool) => {
      ready = pool;
    },
    () => {
      failed = true;
    },
  );
  const identities: FileIdentity[] = [];
  while (identities.length < paths.length && !ready) {
    for (const path of paths.slice(identities.length, identities.length + 8)) {
      identities.push(identifyFile(path));
      onEach?.();
    }
    if (!failed) await new Promise((resolve) => setImmediate(resolve));
  }
  if (identities.length === paths.length) return identities;
  return [...identities, ...(await ready!.identifyAll(paths.slice(identities.length), onEach))];
}
