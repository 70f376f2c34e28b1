import { parentPort } from 'node:worker_threads';
import type { Logger } from '@imgpipe/kit';
import type { WorkerReady, WorkerReply, WorkerRequest } from './worker-pool.js';
import { parentLogger } from '@imgpipe/kit';
import { answerRequests, whileBusy } from '@imgpipe/kit/worker-thread';

/** What a backbone worker opens: its ready message and the batch function. */
interface WorkerModel<Ready extends WorkerReady> {
  ready: Ready;
  run(pixels: Uint8Array, count: number): Promise<Float32Array>;
}

/**
 * The worker side of WorkerPool: open the model (its log lines go to the pool's logger), say ready or why not, then
 * answer batches with features until the pool stops the thread.
 */
export async function serveBatches<Ready extends WorkerReady>(open: (log: Logger) => Promise<WorkerModel<Ready>>): Promise<void> {
  const port = parentPort!;
  const post = (reply: WorkerReply<Ready>, transfer: ArrayBuffer[] = []) => port.postMessage(reply, transfer);
  let model: WorkerModel<Ready>;
  try {
    model = await whileBusy(() => open(parentLogger()));
    post(model.ready);
  } catch (error) {
    post({ type: 'error', id: -1, message: (error as Error).message, usage: (error as Error).name === 'UsageError' });
    process.exit(0);
  }
  answerRequests(async (request: WorkerRequest) => {
    try {
      const features = await model.run(request.pixels, request.count);
      const { pixels } = request;
      post({ type: 'result', id: request.id, features, pixels }, [features.buffer as ArrayBuffer, pixels.buffer as ArrayBuffer]);
    } catch (error) {
      post({ type: 'error', id: request.id, message: (error as Error).message, usage: false });
    }
  });
}
