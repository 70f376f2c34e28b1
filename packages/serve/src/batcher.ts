import { UnavailableError } from './http-error.js';

interface BatcherOptions<I, O> {
  /** Runs one batch; must return one output per input, in order. */
  predictBatch(items: I[]): Promise<O[]>;
  /** Most items per predictBatch call (1 = batching off). */
  maxBatch: number;
  /** How long the first queued item may wait for others to join it. */
  maxDelayMs: number;
  /** Most items waiting (not counting the batch running); beyond it, submit rejects with a 503. */
  maxQueue: number;
  /**
   * Batches allowed to run at once (default 1: an engine that already uses every core for one call, like ONNX
   * Runtime; a pool of N TF.js WebAssembly workers wants N).
   */
  concurrency?: number;
  /**
   * Whether more items are on their way (a request being decoded): when it says no, a batch that would wait for
   * others to join starts at once, since none can join but a request not yet arrived. Without it, always yes.
   */
  moreComing?(): boolean;
  /** Called after each batch with its size and duration. */
  onBatch?(size: number, seconds: number, error?: unknown): void;
}

interface Waiting<I, O> {
  item: I;
  enqueued: number;
  resolve(output: O): void;
  reject(error: unknown): void;
}

/**
 * Dynamic batching: items submitted by concurrent requests are coalesced into one predictBatch call of at
 * most maxBatch items, started when the batch is full or when its oldest item has waited maxDelayMs.
 * At most `concurrency` batches run at a time (default 1), the queue is bounded, and a failing batch rejects
 * only its own items.
 */
export class Batcher<I, O> {
  readonly #options: BatcherOptions<I, O>;
  /** One group per submitAll call (a request), in arrival order; batches take from the groups in turn. */
  #groups: Waiting<I, O>[][] = [];
  #queued = 0;
  #running = 0;
  #flushing = false;
  readonly #concurrency: number;
  #timer: NodeJS.Timeout | undefined;
  #immediate: NodeJS.Immediate | undefined;
  #idle: (() => void)[] = [];

  constructor(options: BatcherOptions<I, O>) {
    for (const key of ['maxBatch', 'maxQueue'] as const) {
      if (!Number.isInteger(options[key]) || options[key] < 1) throw new RangeError(`${key} must be a positive integer, got ${options[key]}`);
    }
    if (!(options.maxDelayMs >= 0)) throw new RangeError(`maxDelayMs must be >= 0, got ${options.maxDelayMs}`);
    this.#options = options;
    this.#concurrency = options.concurrency ?? 1;
    if (!Number.isInteger(this.#concurrency) || this.#concurrency < 1)
      throw new RangeError(`concurrency must be a positive integer, got ${options.concurrency}`);
  }

  /** Items waiting for a batch. */
  get depth(): number {
    return this.#queued;
  }

  get busy(): boolean {
    return this.#running > 0 || this.#queued > 0;
  }

  /**
   * Queue all items of one request, or none: when they do not fit, reject with UnavailableError (503) so
   * that a request is never half-admitted.
   */
  submitAll(items: readonly I[]): Promise<O[]> {
    const { maxQueue } = this.#options;
    if (this.#queued + items.length > maxQueue) {
      return Promise.reject(new UnavailableError(`queue full: ${this.#queued} images waiting, limit ${maxQueue} (--max-queue); retry later`));
    }
    const now = performance.now();
    const group: Waiting<I, O>[] = [];
    const outputs = items.map((item) => new Promise<O>((resolve, reject) => group.push({ item, enqueued: now, resolve, reject })));
    if (group.length > 0) {
      this.#groups.push(group);
      this.#queued += group.length;
    }
    this.#schedule();
    return Promise.all(outputs);
  }

  submit(item: I): Promise<O> {
    return this.submitAll([item]).then((outputs) => outputs[0]!);
  }

  /** From now on, start batches without waiting for them to fill (used when shutting down). */
  flush(): void {
    this.#flushing = true;
    this.#schedule();
  }

  /** Resolves once nothing is queued or running. */
  whenIdle(): Promise<void> {
    if (!this.busy) return Promise.resolve();
    return new Promise((resolve) => this.#idle.push(resolve));
  }

  #schedule(): void {
    if (this.#running >= this.#concurrency || this.#queued === 0 || this.#immediate !== undefined) return;
    const { maxBatch, maxDelayMs } = this.#options;
    const waited = performance.now() - Math.min(...this.#groups.map((g) => g[0]!.enqueued));
    const nothingComing = this.#options.moreComing?.() === false;
    if (this.#flushing || this.#queued >= maxBatch || waited >= maxDelayMs || nothingComing) {
      clearTimeout(this.#timer);
      this.#timer = undefined;
      // setImmediate rather than a direct call: items submitted in the same tick join this batch.
      this.#immediate = setImmediate(() => this.#runBatch());
    } else if (this.#timer === undefined) {
      this.#timer = setTimeout(() => this.#runBatch(), maxDelayMs - waited);
    }
  }

  /**
   * Up to `count` items, one from each waiting request in turn (oldest request first), so a request of 200
   * images shares every batch with the small ones that arrive while it runs instead of holding the model.
   */
  #take(count: number): Waiting<I, O>[] {
    const batch: Waiting<I, O>[] = [];
    while (batch.length < count && this.#groups.length > 0) {
      for (const group of this.#groups) {
        if (batch.length >= count) break;
        batch.push(group.shift()!);
      }
      this.#groups = this.#groups.filter((g) => g.length > 0);
    }
    this.#queued -= batch.length;
    return batch;
  }

  #runBatch(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#immediate = undefined;
    if (this.#running >= this.#concurrency || this.#queued === 0) return;
    const batch = this.#take(this.#options.maxBatch);
    this.#running += 1;
    const started = performance.now();
    let outputs: Promise<O[]>;
    try {
      outputs = this.#options.predictBatch(batch.map((w) => w.item));
    } catch (error) {
      outputs = Promise.reject(error);
    }
    outputs
      .then((results) => {
        if (!Array.isArray(results) || results.length !== batch.length) {
          throw new Error(`predictBatch returned ${Array.isArray(results) ? results.length : typeof results} outputs for ${batch.length} inputs`);
        }
        this.#options.onBatch?.(batch.length, (performance.now() - started) / 1000);
        batch.forEach((w, i) => {
          w.resolve(results[i]!);
        });
      })
      .catch((error: unknown) => {
        this.#options.onBatch?.(batch.length, (performance.now() - started) / 1000, error);
        for (const w of batch) w.reject(error);
      })
      .finally(() => {
        this.#running -= 1;
        this.#schedule();
        if (!this.busy) for (const resolve of this.#idle.splice(0)) resolve();
      });
    this.#schedule(); // with concurrency > 1, what is left may start another batch now
  }
}
