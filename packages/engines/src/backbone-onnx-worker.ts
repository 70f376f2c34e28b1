import { workerInit } from '@imgpipe/kit/worker-thread';
import type { ConcreteDevice, Device } from './device.js';
import { openOnnxRunner, type OnnxRunPlan } from './onnx-runner.js';
import type { WorkerReady } from './worker-pool.js';
import { serveBatches } from './worker-pool-thread.js';

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
const init = workerInit<OnnxWorkerInit>();
await serveBatches<OnnxWorkerReady>(async (log) => {
  const runner = await openOnnxRunner(init.model, init.plan, init.device, { log, sharedCpu: init.sharedCpu });
  return { ready: { type: 'ready', inputSize: init.plan.size, device: runner.device }, run: runner.run };
});
