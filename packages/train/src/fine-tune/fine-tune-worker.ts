import { parentPort } from 'node:worker_threads';
import { parentLogger, sha256 } from '@imgpipe/kit';
import { workerInit } from '@imgpipe/kit/worker-thread';
import { loadTf } from '@imgpipe/engines';
import { registerTrainingKernels } from '@imgpipe/training-kernels';
import { outputFloatsPerImage } from './fine-tune-memory.js';
import { keepGradientsAdam } from './fine-tune-optimizer.js';
import { buildFineTuneModel, inputTensor, predictProbabilities, saveFineTuned, trainedParameters } from './fine-tune-model.js';
import type { FineTuneReply, FineTuneRequest, FineTuneWorkerInit, ShardStep } from './fine-tune-worker-pool.js';

/**
 * One fine-tuning worker (FineTuneWorkers): its own TF.js wasm, the fine-tuning model built as in-process, and an
 * Adam optimizer. A step runs tfjs-layers' own trainOnBatch on the shard (training mode for BatchNorm and dropout,
 * the compiled loss and accuracy) but keeps the gradients instead of applying them; the parent averages every
 * worker's and sends the average back to be applied here, so every worker's trainable weights stay the same.
 */
const init = workerInit<FineTuneWorkerInit>();
const port = parentPort!;
const post = (reply: FineTuneReply, transfer: ArrayBuffer[] = []) => port.postMessage(reply, transfer);

try {
  const { tf } = await loadTf('wasm');
  registerTrainingKernels(tf);
  const log = parentLogger();
  const parts = await buildFineTuneModel(tf, init.backboneModelJson, init.headModelJson, init.featureLayer, init.mode, init.bnStatistics, log);
  const { model } = parts;
  const adam = keepGradientsAdam(tf, model, init.lr);
  model.compile({ optimizer: adam.optimizer, loss: 'categoricalCrossentropy', metrics: ['accuracy'] });
  const movingStats = model.layers
    .filter((layer) => layer.getClassName() === 'BatchNormalization')
    .flatMap((layer) => layer.weights.filter((w) => /moving_(mean|variance)$/.test(w.originalName)));
  const size = init.inputSize;

  const handle = async (request: FineTuneRequest): Promise<{ value: unknown; transfer?: ArrayBuffer[] }> => {
    switch (request.type) {
      case 'step': {
        if (request.count === 0)
          return { value: { count: 0, loss: 0, accuracy: 0, gradients: null, tensors: tf.memory().numTensors } satisfies ShardStep };
        const x = inputTensor(tf, request.pixels, request.count, size, init.preprocess);
        const y = tf.tensor2d(request.oneHot, [request.count, init.classes]);
        try {
          const [loss, accuracy] = (await model.trainOnBatch(x, y)) as number[];
          const gradients = adam.take();
          const step: ShardStep = { count: request.count, loss: loss!, accuracy: accuracy!, gradients, tensors: 0 };
          return { value: step, transfer: gradients.map((g) => g.buffer as ArrayBuffer) };
        } finally {
          tf.dispose([x, y]);
        }
      }
      case 'apply':
        adam.apply(request.gradients, request.lr);
        return { value: tf.memory().numTensors };
      case 'bn-stats': {
        const stats = movingStats.map((w) => new Float32Array(w.read().dataSync() as Float32Array));
        return { value: stats, transfer: stats.map((s) => s.buffer as ArrayBuffer) };
      }
      case 'set-bn-stats':
        movingStats.forEach((w, i) => {
          const value = tf.tensor(request.stats[i]!, w.shape as number[]);
          w.write(value);
          value.dispose();
        });
        return { value: null };
      case 'digest':
        return {
          value: sha256(
            Buffer.concat(
              model.trainableWeights.map((w) => {
                const data = w.read().dataSync() as Float32Array;
                return Buffer.from(data.buffer, data.byteOffset, data.byteLength);
              }),
            ),
          ),
        };
      case 'predict': {
        const p = await predictProbabilities(tf, model, request.pixels, request.count, size, init.preprocess);
        return { value: p, transfer: [p.buffer as ArrayBuffer] };
      }
      case 'save':
        await saveFineTuned(parts, request.outDir);
        return { value: null };
    }
  };
  let queue = Promise.resolve();
  // Not answerRequests: TF.js on WebAssembly makes no native call, so the pool may end this thread mid-step at once
  // (a signal need not wait for a step of several seconds).
  port.on('message', (request: FineTuneRequest & { id: number }) => {
    queue = queue.then(async () => {
      try {
        const { value, transfer } = await handle(request);
        if (request.type === 'step') (value as ShardStep).tensors = tf.memory().numTensors;
        post({ type: 'result', id: request.id, value }, transfer);
      } catch (error) {
        post({ type: 'error', id: request.id, message: (error as Error).message });
      }
    });
  });
  const names = model.trainableWeights.map((w) => (w.read() as unknown as { name: string }).name);
  log.debug(`fine-tuning worker ready: ${names.length} trainable variables`);
  post({ type: 'ready', trainedParameters: trainedParameters(model), outputFloatsPerImage: outputFloatsPerImage(model.layers), variables: names });
} catch (error) {
  post({ type: 'error', id: -1, message: (error as Error).message });
}
