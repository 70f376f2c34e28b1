import { workerInit } from '@imgpipe/kit/worker-thread';
import { openTfjsRunner } from './backbone-tfjs-runner.js';
import type { PreprocessSpec } from '@imgpipe/kit';
import { loadTf } from './tfjs-load.js';
import type { WorkerReady } from './worker-pool.js';
import { serveBatches } from './worker-pool-thread.js';

/** One worker of a TF.js WebAssembly pool: its own tf and wasm backend, one model, batches in, features out. */
interface WorkerInit {
  modelJsonPath: string;
  featureLayer?: string;
  preprocess: PreprocessSpec;
  inputSize?: number;
}
export interface TfjsWorkerReady extends WorkerReady {
  featureLayer: string;
  format: 'tfjs-layers' | 'tfjs-graph';
}
const init = workerInit<WorkerInit>();
await serveBatches<TfjsWorkerReady>(async () => {
  const { tf } = await loadTf('wasm');
  const runner = await openTfjsRunner(tf, init.modelJsonPath, init);
  return {
    ready: { type: 'ready', inputSize: runner.inputSize, featureLayer: runner.featureLayer, format: runner.format },
    run: (pixels, count) => runner.run(pixels, count),
  };
});
