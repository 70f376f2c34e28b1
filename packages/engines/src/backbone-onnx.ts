import { readFile } from 'node:fs/promises';
import type { Backbone, LoadBackboneOptions, ResolvedBackbone } from './backbone-types.js';
import { InputError, sha256, type Logger } from '@imgpipe/kit';
import type { OnnxWorkerInit, OnnxWorkerReady } from './backbone-onnx-worker.js';
import { openOnnxRunner, type OnnxRunner, type OnnxRunPlan } from './onnx-runner.js';
import { disableOrtTelemetry } from './onnx.js';
import { WorkerPool } from './worker-pool.js';
import { decodeOnnx, exposeOutput, globalPoolOutput, graphInput, graphOutputs, metadataProp } from './onnx-graph.js';
import { preprocessSpec } from './preprocess.js';

/** An ONNX backbone on ONNX Runtime: the feature layer exposed as a graph output when it is not one. */
export async function loadOnnxBackbone(resolved: ResolvedBackbone, options: LoadBackboneOptions & { log: Logger }): Promise<Backbone> {
  const { log } = options;
  const bytes = new Uint8Array(await readFile(resolved.path));
  const model = decodeOnnx(bytes, resolved.path);
  const input = graphInput(model);
  if (input.dims.length !== 4)
    throw new InputError(`ONNX backbone ${resolved.path}: expected a 4-D image input, got '${input.name}' with ${input.dims.length} dimensions`);
  const layout = input.dims[1] === 3 ? 'NCHW' : input.dims[3] === 3 ? 'NHWC' : 'NCHW';
  const size = (layout === 'NCHW' ? input.dims[2] : input.dims[1]) ?? options.inputSize ?? 224;
  if (input.dims[1] !== 3 && input.dims[3] !== 3) log.warn(`ONNX backbone ${resolved.path}: channel dimension not fixed, assuming NCHW`);

  const pooled = options.featureLayer ?? resolved.featureLayer ?? (resolved.poolFeatures ? globalPoolOutput(model) : undefined);
  if (resolved.poolFeatures && pooled === undefined) {
    throw new InputError(
      `ONNX backbone ${resolved.path}: no global pooling node found for its features; name the value with --feature-layer (graph outputs: ${graphOutputs(model).join(', ')})`,
    );
  }
  const featureLayer = pooled ?? graphOutputs(model)[0]!;
  const runBytes = exposeOutput(model, bytes, featureLayer, resolved.path);
  const preprocessName = options.preprocess ?? resolved.preprocess ?? metadataProp(model, 'imgpipe.preprocess') ?? 'torch';
  if (!options.preprocess && !resolved.preprocess && !metadataProp(model, 'imgpipe.preprocess')) {
    log.info(`backbone ${resolved.name}: no --preprocess given, using torch (ImageNet mean/std) as for torchvision exports`);
  }
  const preprocess = preprocessSpec(preprocessName);
  const plan: OnnxRunPlan = { inputName: input.name, featureLayer, layout, size, preprocess, maxBatch: input.dims[0] ?? Infinity };
  const runner = options.offMainThread
    ? await workerRunner(runBytes, plan, options, resolved.path, log)
    : await openOnnxRunner(runBytes, plan, options.device, { log, sharedCpu: options.sharedCpu ?? false });
  let probe: Float32Array;
  try {
    probe = await runner.run(new Uint8Array(size * size * 3), 1);
  } catch (error) {
    await runner.dispose();
    throw error;
  }
  return {
    info: {
      name: resolved.name,
      format: 'onnx',
      source: resolved.source,
      sha256: sha256(bytes),
      input_size: size,
      layout,
      preprocess,
      feature_layer: featureLayer,
      feature_dim: probe.length,
      engine: 'onnxruntime',
    },
    files: [resolved.path],
    device: runner.device,
    concurrency: 1,
    async extract(pixels, count) {
      if (count === 0) return new Float32Array(0);
      return runner.run(pixels, count);
    },
    dispose: () => runner.dispose(),
  };
}

/** The same runner in a worker thread (LoadBackboneOptions.offMainThread). */
async function workerRunner(model: Uint8Array, plan: OnnxRunPlan, options: LoadBackboneOptions, path: string, log: Logger): Promise<OnnxRunner> {
  disableOrtTelemetry(); // here, in the main thread: the worker's process.env does not reach native code
  const init: OnnxWorkerInit = { model, plan, device: options.device, sharedCpu: options.sharedCpu ?? false };
  const pool = await WorkerPool.start<OnnxWorkerReady>('backbone-onnx-worker', 1, init, `ONNX backbone ${path}`, log);
  return { device: pool.ready.device, run: (pixels, count) => pool.run(pixels, count), dispose: () => pool.close() };
}
