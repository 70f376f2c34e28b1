import { parentPort, workerData } from 'node:worker_threads';
import type { ConcreteDevice, Device } from './device.js';
import { openOnnxRunner, type OnnxRunner, type OnnxRunPlan } from './onnx-runner.js';
import { silentLogger } from '@imgpipe/kit';
import type { WorkerLog, WorkerReady, WorkerReply, WorkerRequest } from './worker-pool.js';

/**
 * An ONNX backbone in a worker thread: onnxruntime-node runs a session synchronously on the calling thread, so a
 * server runs it here to keep its event loop free (reading requests, starting decodes, answering) during a batch.
 */
export interface OnnxWorkerInit {
  model: Uint8Array;
  plan: OnnxRunPlan;
  device: Device;
  sharedCpu: boolean;
}
export interface OnnxWorkerReady extends WorkerReady {
  device: ConcreteDevice;
}
type Reply = WorkerReply<OnnxWorkerReady>;

const port = parentPort!;
const init = workerData as OnnxWorkerInit;
let runner: OnnxRunner;
try {
  const forward = (level: WorkerLog['level']) => (message: string) => port.postMessage({ type: 'log', level, message } satisfies Reply);
  const log = { ...silentLogger, debug: forward('debug'), info: forward('info'), warn: forward('warn') };
  runner = await openOnnxRunner(init.model, init.plan, init.device, { log, sharedCpu: init.sharedCpu });
  port.postMessage({ type: 'ready', inputSize: init.plan.size, device: runner.device } satisfies Reply);
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
