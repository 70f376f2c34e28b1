import { readFile } from 'node:fs/promises';
import type { Backbone, LoadBackboneOptions, ResolvedBackbone } from './backbone-types.js';
import { InputError, sha256, type Logger } from '@imgpipe/kit';
import { createOnnxSession, loadOrt } from './onnx.js';
import { decodeOnnx, exposeOutput, globalPoolOutput, graphInput, graphOutputs, metadataProp } from './onnx-graph.js';
import { preprocessPixels, preprocessSpec } from './preprocess.js';

/** An ONNX backbone on ONNX Runtime: the feature layer exposed as a graph output when it is not one. */
export async function loadOnnxBackbone(resolved: ResolvedBackbone, options: LoadBackboneOptions & { log: Logger }): Promise<Backbone> {
  const { log } = options;
  const bytes = new Uint8Array(await readFile(resolved.path));
  const model = decodeOnnx(bytes, resolved.path);
  const input = graphInput(model);
  if (input.dims.length !== 4) throw new InputError(`ONNX backbone ${resolved.path}: expected a 4-D image input, got '${input.name}' with ${input.dims.length} dimensions`);
  const layout = input.dims[1] === 3 ? 'NCHW' : input.dims[3] === 3 ? 'NHWC' : 'NCHW';
  const size = (layout === 'NCHW' ? input.dims[2] : input.dims[1]) ?? options.inputSize ?? 224;
  if (input.dims[1] !== 3 && input.dims[3] !== 3) log.warn(`ONNX backbone ${resolved.path}: channel dimension not fixed, assuming NCHW`);

  const featureLayer =
    options.featureLayer ?? resolved.featureLayer ?? (resolved.poolFeatures ? globalPoolOutput(model) : undefined) ?? graphOutputs(model)[0]!;
  const runBytes = exposeOutput(model, bytes, featureLayer, resolved.path);
  const preprocessName = options.preprocess ?? resolved.preprocess ?? metadataProp(model, 'imgpipe.preprocess') ?? 'torch';
  if (!options.preprocess && !resolved.preprocess && !metadataProp(model, 'imgpipe.preprocess')) {
    log.info(`backbone ${resolved.name}: no --preprocess given, using torch (ImageNet mean/std) as for torchvision exports`);
  }
  const preprocess = preprocessSpec(preprocessName);
  const { session, device } = await createOnnxSession(runBytes, options.device, log, { sharedCpu: options.sharedCpu ?? false });
  const ort = await loadOrt();
  const dims = (count: number) => (layout === 'NCHW' ? [count, 3, size, size] : [count, size, size, 3]);

  // Some exports fix the batch dimension (often to 1): run such models in chunks of that size.
  const maxBatch = input.dims[0] ?? Infinity;
  const imageBytes = size * size * 3;
  const runChunked = async (pixels: Uint8Array, count: number): Promise<Float32Array> => {
    if (count <= maxBatch) return run(pixels, count);
    const parts: Float32Array[] = [];
    for (let start = 0; start < count; start += maxBatch) {
      const n = Math.min(maxBatch, count - start);
      parts.push(await run(pixels.subarray(start * imageBytes, (start + n) * imageBytes), n));
    }
    const out = new Float32Array(parts.reduce((sum, p) => sum + p.length, 0));
    let offset = 0;
    for (const p of parts) {
      out.set(p, offset);
      offset += p.length;
    }
    return out;
  };
  const run = async (pixels: Uint8Array, count: number): Promise<Float32Array> => {
    const data = preprocessPixels(pixels, count, size, preprocess, layout);
    const tensor = new ort.Tensor('float32', data, dims(count));
    const results = await session.run({ [input.name]: tensor }, [featureLayer]);
    tensor.dispose();
    const out = results[featureLayer]!;
    const features = new Float32Array(out.data as Float32Array); // copy: ORT owns its buffer
    for (const value of Object.values(results)) value.dispose();
    return features;
  };
  const probe = await run(new Uint8Array(size * size * 3), 1);
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
    device,
    concurrency: 1,
    async extract(pixels, count) {
      if (count === 0) return new Float32Array(0);
      return runChunked(pixels, count);
    },
    async dispose() {
      await session.release();
    },
  };
}
