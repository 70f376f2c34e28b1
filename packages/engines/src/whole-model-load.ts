import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { InputError, safeJoin, type Logger, type ModelCard, type WholeModelInfo } from '@imgpipe/kit';
import type { LoadedModel, LoadModelOptions } from './model-types.js';
import type { OnnxWorkerInit, OnnxWorkerReady } from './backbone-onnx-worker.js';
import { decodeOnnx, graphInput } from './onnx-graph.js';
import { openOnnxRunner, type OnnxRunner, type OnnxRunPlan } from './onnx-runner.js';
import { WorkerPool } from './worker-pool.js';

/** A verified model directory's model.onnx on ONNX Runtime: one session, uint8 pixels in, probabilities out. */
export async function loadWholeModel(
  dir: string,
  card: ModelCard,
  whole: WholeModelInfo,
  options: LoadModelOptions & { log: Logger },
): Promise<LoadedModel> {
  const path = safeJoin(dir, whole.path, `${join(dir, 'card.json')}: onnx.path`);
  const bytes = new Uint8Array(await readFile(path));
  const size = card.input.size;
  const classes = card.labels.length;
  // A batch size fixed by the backbone's export is kept in model.onnx: larger batches run in chunks of it.
  const maxBatch = graphInput(decodeOnnx(bytes, path)).dims[0] ?? Number.POSITIVE_INFINITY;
  const plan: OnnxRunPlan = { inputName: whole.input, featureLayer: whole.output, layout: 'NHWC', size, preprocess: null, maxBatch };
  let runner: OnnxRunner;
  if (options.offMainThread) {
    const init: OnnxWorkerInit = { model: bytes, plan, device: options.device, sharedCpu: options.sharedCpu ?? false };
    const pool = await WorkerPool.start<OnnxWorkerReady>('backbone-onnx-worker', 1, init, `model ${path}`, options.log);
    runner = { device: pool.ready.device, run: (pixels, count) => pool.run(pixels, count), dispose: () => pool.close() };
  } else {
    runner = await openOnnxRunner(bytes, plan, options.device, { log: options.log, sharedCpu: options.sharedCpu ?? false });
  }
  options.log.info(`model ${dir}: ${whole.path} on ONNX Runtime (${runner.device})`);
  return {
    dir,
    card,
    labels: card.labels,
    inputSize: size,
    concurrency: 1,
    async predict(pixels, count) {
      if (pixels.length !== count * size * size * 3) {
        throw new InputError(`expected ${count} images of ${size}x${size}x3 (${count * size * size * 3} bytes), got ${pixels.length} bytes`);
      }
      if (count === 0) return new Float32Array(0);
      const out = await runner.run(pixels, count);
      if (out.length !== count * classes)
        throw new InputError(`${path}: gives ${out.length / count} probabilities per image, the card lists ${classes} labels`);
      return out;
    },
    dispose: () => runner.dispose(),
  };
}
