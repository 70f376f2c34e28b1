import { parentPort, workerData } from 'node:worker_threads';
import { openTfjsRunner, type TfjsRunner } from './backbone-tfjs-runner.js';
import type { PreprocessSpec } from '@imgpipe/kit';
import { loadTf } from './tf.js';
import type { WorkerReady, WorkerReply, WorkerRequest } from './worker-pool.js';

/** One worker of a TF.js WebAssembly pool: its own tf and wasm backend, one model, batches in, features out. */
export interface WorkerInit {
  modelJsonPath: string;
  featureLayer?: string;
  preprocess: PreprocessSpec;
  inputSize?: number;
}
export interface TfjsWorkerReady extends WorkerReady {
  featureLayer: string;
  format: 'tfjs-layers' | 'tfjs-graph';
}
type Reply = WorkerReply<TfjsWorkerReady>;

const port = parentPort!;
const init = workerData as WorkerInit;
let runner: TfjsRunner;
try {
  const { tf } = await loadTf('wasm');
  runner = await openTfjsRunner(tf, init.modelJsonPath, init);
  port.postMessage({ type: 'ready', inputSize: runner.inputSize, featureLayer: runner.featureLayer, format: runner.format } satisfies Reply);
} catch (error) {
  port.postMessage({ type: 'error', id: -1, message: (error as Error).message, usage: (error as Error).name === 'UsageError' } satisfies Reply);
  process.exit(0);
}
port.on('message', async (request: WorkerRequest) => {
  try {
    const features = await runner.run(request.pixels, request.count);
    port.postMessage({ type: 'result', id: request.id, features } satisfies Reply, [features.buffer as ArrayBuffer]);
  } catch (error) {
    port.postMessage({ type: 'error', id: request.id, message: (error as Error).message, usage: false } satisfies Reply);
  }
});
