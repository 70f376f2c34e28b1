import { parentPort, workerData } from 'node:worker_threads';

/**
 * The thread side of startWorkers. A thread ended while it is inside a native addon's call (libjpeg-turbo, sharp,
 * onnxruntime) takes the whole process with it: the addon's next call into the ending thread fails, and
 * node-addon-api's C++ exception reaches std::terminate ("terminate called after throwing an instance of
 * 'Napi::Error'", exit 134). So a set of threads shares a gate with its parent: the threads count the work they are
 * inside, and the parent closes the gate and waits for that count to reach zero before it ends them, both when it
 * closes them and on process.exit (a signal, a crash). The gate is two Int32 cells of shared memory.
 */
export const GATE_CLOSED = 0;
export const GATE_BUSY = 1;

/** What startWorkers gives a thread as workerData: the gate and the caller's own workerData. */
export interface GatedWorkerData {
  gate: Int32Array;
  init: unknown;
}

const gate = () => (workerData as GatedWorkerData).gate;

/** The workerData the parent passed to startWorkers. */
export function workerInit<T>(): T {
  return (workerData as GatedWorkerData).init as T;
}

/** Run `work` counted as busy: the parent does not end this thread while it runs (within the parent's patience). */
export async function whileBusy<T>(work: () => T | Promise<T>): Promise<T> {
  const cells = gate();
  Atomics.add(cells, GATE_BUSY, 1);
  try {
    return await work();
  } finally {
    Atomics.sub(cells, GATE_BUSY, 1);
    Atomics.notify(cells, GATE_BUSY);
  }
}

/**
 * Answer each message from the parent with `answer` (its promise counted as busy). Once the parent has closed the
 * gate, messages still queued are dropped unanswered: the parent is ending the thread.
 */
export function answerRequests<Request>(answer: (request: Request) => unknown): void {
  parentPort!.on('message', (request: Request) =>
    whileBusy(() => {
      if (Atomics.load(gate(), GATE_CLOSED) === 0) return answer(request);
    }),
  );
}
