import { parentPort, workerData } from 'node:worker_threads';
import { openTfjsRunner, type TfjsRunner } from './backbone-tfjs-runner.js';
import type { PreprocessSpec } from '@imgpipe/kit';
import { loadTf } from './tf.js';

/** One worker of a TF.js WebAssembly pool: its own tf and wasm backend, one model, batches in, features out. */
export interface WorkerInit {
  modelJsonPath: string;
  featureLayer?: string;
  preprocess: PreprocessSpec;
  inputSize?: number;
}
export type WorkerRequest = { id: number; pixels: Uint8Array; count: number };
export type WorkerReply =
  | { type: 'ready'; inputSize: number; featureLayer: string; format: 'tfjs-layers' | 'tfjs-graph' }
  | { type: 'result'; id: number; features: Float32Array }
  | { type: 'error'; id: number; message: string; usage: boolean };

const port = parentPort!;
const init = workerData as WorkerInit;
let runner: TfjsRunner;
try {
  const { tf } = await loadTf('wasm');
  runner = await openTfjsRunner(tf, init.modelJsonPath, init);
  port.postMessage({ type: 'ready', inputSize: runner.inputSize, featureLayer: runner.featureLayer, format: runner.format } satisfies WorkerReply);
} catch (error) {
  port.postMessage({ type: 'error', id: -1, message: (error as Error).message, usage: (error as Error).name === 'UsageError' } satisfies WorkerReply);
  process.exit(0);
}
port.on('message', async (request: WorkerRequest) => {
  try {
    const features = await runner.run(request.pixels, request.count);
    port.postMessage({ type: 'result', id: request.id, features } satisfies WorkerReply, [features.buffer as ArrayBuffer]);
  } catch (error) {
    port.postMessage({ type: 'error', id: request.id, message: (error as Error).message, usage: false } satisfies WorkerReply);
  }
});
