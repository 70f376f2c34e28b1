import { readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { Worker } from 'node:worker_threads';
import type { Backbone, LoadBackboneOptions, ResolvedBackbone } from './backbone-types.js';
import { openTfjsRunner, tfjsFormatOf } from './backbone-tfjs-runner.js';
import type { WorkerInit, WorkerReply } from './backbone-tfjs-worker.js';
import { cpuThreads } from './device.js';
import { FailureError, InputError, UsageError, sha256, type Logger, type PreprocessSpec } from '@imgpipe/kit';
import { preprocessSpec } from './preprocess.js';
import { loadTf } from './tf.js';
import { readModelJson, weightPaths } from './tfjs-io.js';

/**
 * A TF.js backbone (layers or graph model.json). On WebAssembly, which is single-threaded in Node, it runs in a pool
 * of worker threads, one tf + wasm backend each; on tfjs-node, -gpu or webgpu it runs in this thread.
 */
export async function loadTfjsBackbone(resolved: ResolvedBackbone, options: LoadBackboneOptions & { log: Logger }): Promise<Backbone> {
  const { log } = options;
  const json = await readModelJson(resolved.path);
  const files = [resolved.path, ...weightPaths(json, resolved.path).map((p) => join(dirname(resolved.path), p))];
  const hash = sha256(Buffer.concat(await Promise.all(files.map((f) => readFile(f).catch((error) => {
    throw new InputError(`cannot read ${f} of TF.js backbone ${resolved.path}`, { cause: error });
  })))));
  const recorded = (json.userDefinedMetadata as { imgpipe?: { preprocess?: string } } | undefined)?.imgpipe?.preprocess;
  const preprocessName = options.preprocess ?? resolved.preprocess ?? recorded ?? 'tf';
  if (!options.preprocess && !resolved.preprocess && !recorded) log.info(`backbone ${resolved.name}: no --preprocess given, using tf ([-1, 1]) as for keras models`);
  const preprocess = preprocessSpec(preprocessName);
  const featureLayer = options.featureLayer ?? resolved.featureLayer;

  const loaded = await loadTf(options.device, log);
  const workers = loaded.backend === 'wasm' ? Math.max(1, options.workers ?? cpuThreads()) : 1;
  const base = { name: resolved.name, format: tfjsFormatOf(json), source: resolved.source, sha256: hash, layout: 'NHWC' as const, preprocess, engine: 'tfjs' as const };

  if (workers === 1) {
    const runner = await openTfjsRunner(loaded.tf, resolved.path, { featureLayer, preprocess, inputSize: options.inputSize });
    const probe = await runner.run(new Uint8Array(runner.inputSize ** 2 * 3), 1);
    return {
      info: { ...base, input_size: runner.inputSize, feature_layer: runner.featureLayer, feature_dim: probe.length },
      files,
      device: loaded.device,
      concurrency: 1,
      extract: (pixels, count) => (count === 0 ? Promise.resolve(new Float32Array(0)) : runner.run(pixels, count)),
      async dispose() {
        runner.dispose();
      },
    };
  }
  const pool = await WorkerPool.start(workers, { modelJsonPath: resolved.path, featureLayer, preprocess, inputSize: options.inputSize });
  log.debug(`TF.js backbone on wasm: ${workers} worker threads`);
  try {
    const probe = await pool.run(new Uint8Array(pool.ready.inputSize ** 2 * 3), 1);
    return {
      info: { ...base, input_size: pool.ready.inputSize, feature_layer: pool.ready.featureLayer, feature_dim: probe.length },
      files,
      device: loaded.device,
      concurrency: workers,
      extract: (pixels, count) => (count === 0 ? Promise.resolve(new Float32Array(0)) : pool.run(pixels, count)),
      dispose: () => pool.close(),
    };
  } catch (error) {
    await pool.close();
    throw error;
  }
}

/** The worker from dist/ (.js); from sources (tests, benchmarks under tsx) through a bootstrap that registers tsx in the worker. */
function startWorker(init: WorkerInit): Worker {
  if (!import.meta.url.endsWith('.ts')) return new Worker(new URL('./backbone-tfjs-worker.js', import.meta.url), { workerData: init });
  const tsx = import.meta.resolve('tsx/esm/api');
  const entry = new URL('./backbone-tfjs-worker.ts', import.meta.url).href;
  const bootstrap = `import(${JSON.stringify(tsx)}).then((m) => { m.register(); return import(${JSON.stringify(entry)}); });`;
  return new Worker(bootstrap, { eval: true, workerData: init });
}

type Ready = Extract<WorkerReply, { type: 'ready' }>;

/** Worker threads each holding the model; a batch goes to the first idle one. */
class WorkerPool {
  private idle: Worker[] = [];
  private waiting: ((worker: Worker) => void)[] = [];
  private pending = new Map<number, { resolve: (f: Float32Array) => void; reject: (e: Error) => void }>();
  private nextId = 0;
  private broken: Error | undefined;
  private closing = false;

  private constructor(
    private readonly workers: Worker[],
    readonly ready: Ready,
  ) {
    this.idle = [...workers];
    for (const worker of workers) {
      worker.on('message', (reply: WorkerReply) => {
        if (reply.type === 'ready') return;
        const task = this.pending.get(reply.id);
        if (!task) return;
        this.pending.delete(reply.id);
        if (reply.type === 'result') task.resolve(reply.features);
        else task.reject(new FailureError(`TF.js worker failed: ${reply.message}`));
        this.release(worker);
      });
      worker.on('error', (error) => this.failAll(error));
      worker.on('exit', (code) => {
        if (!this.closing) this.failAll(new Error(`a worker exited with code ${code}`));
      });
    }
  }

  static async start(count: number, init: WorkerInit & { preprocess: PreprocessSpec }): Promise<WorkerPool> {
    const workers = Array.from({ length: count }, () => startWorker(init));
    try {
      const replies = await Promise.all(
        workers.map(
          (worker) =>
            new Promise<Ready>((resolve, reject) => {
              worker.once('message', (reply: WorkerReply) => {
                if (reply.type === 'ready') resolve(reply);
                else if (reply.type === 'error') reject(reply.usage ? new UsageError(reply.message) : new InputError(reply.message));
              });
              worker.once('error', reject);
              worker.once('exit', (code) => reject(new FailureError(`TF.js worker exited with code ${code} while loading ${init.modelJsonPath}`)));
            }),
        ),
      );
      return new WorkerPool(workers, replies[0]!);
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
      worker.postMessage({ id, pixels: copy, count }, [copy.buffer]);
    });
  }

  private release(worker: Worker) {
    const next = this.waiting.shift();
    if (next) next(worker);
    else this.idle.push(worker);
  }

  private failAll(error: Error) {
    this.broken ??= new FailureError(`TF.js worker crashed: ${error.message}`, { cause: error });
    for (const task of this.pending.values()) task.reject(this.broken);
    this.pending.clear();
    for (const waiter of this.waiting.splice(0)) waiter(this.workers[0]!); // they find the pool broken below
  }

  async close() {
    this.closing = true;
    await Promise.all(this.workers.map((w) => w.terminate()));
  }
}
