import type { PreprocessSpec } from '@imgpipe/kit';
import { silentLogger, type Logger } from '@imgpipe/kit';
import type { ConcreteDevice, Device } from './device.js';
import { createOnnxSession, loadOrt } from './onnx.js';
import { preprocessPixels } from './preprocess.js';

/** How to feed an ONNX backbone and which value to read: everything a session needs besides the model bytes. */
export interface OnnxRunPlan {
  inputName: string;
  featureLayer: string;
  layout: 'NCHW' | 'NHWC';
  size: number;
  /** null: the graph takes the uint8 pixels as they are (model.onnx, which preprocesses inside). */
  preprocess: PreprocessSpec | null;
  /** A batch dimension fixed by the export (often 1): larger batches run in chunks of it. */
  maxBatch: number;
}

export interface OnnxRunner {
  device: ConcreteDevice;
  /** count images of size^2 RGB uint8 NHWC in, count * feature_dim float32 out. */
  run(pixels: Uint8Array, count: number): Promise<Float32Array>;
  dispose(): Promise<void>;
}

/** An ONNX Runtime session for `model` (the feature value already exposed) and the code that feeds it. */
export async function openOnnxRunner(
  model: Uint8Array,
  plan: OnnxRunPlan,
  device: Device,
  options: { log?: Logger; sharedCpu?: boolean } = {},
): Promise<OnnxRunner> {
  const session = await createOnnxSession(model, device, options.log ?? silentLogger, { sharedCpu: options.sharedCpu ?? false });
  const ort = await loadOrt();
  const { size, layout, preprocess, featureLayer, inputName } = plan;
  const imageBytes = size * size * 3;
  const dims = (count: number) => (layout === 'NCHW' ? [count, 3, size, size] : [count, size, size, 3]);
  const runOnce = async (pixels: Uint8Array, count: number): Promise<Float32Array> => {
    const tensor = preprocess
      ? new ort.Tensor('float32', preprocessPixels(pixels, count, size, preprocess, layout), dims(count))
      : new ort.Tensor('uint8', pixels.length === count * imageBytes ? pixels : pixels.subarray(0, count * imageBytes), dims(count));
    const results = await session.session.run({ [inputName]: tensor }, [featureLayer]);
    tensor.dispose();
    const features = new Float32Array(results[featureLayer]!.data as Float32Array); // copy: ORT owns its buffer
    for (const value of Object.values(results)) value.dispose();
    return features;
  };
  return {
    device: session.device,
    async run(pixels, count) {
      if (count <= plan.maxBatch) return runOnce(pixels, count);
      const parts: Float32Array[] = [];
      for (let start = 0; start < count; start += plan.maxBatch) {
        const n = Math.min(plan.maxBatch, count - start);
        parts.push(await runOnce(pixels.subarray(start * imageBytes, (start + n) * imageBytes), n));
      }
      const out = new Float32Array(parts.reduce((sum, p) => sum + p.length, 0));
      let offset = 0;
      for (const p of parts) {
        out.set(p, offset);
        offset += p.length;
      }
      return out;
    },
    async dispose() {
      await session.session.release();
    },
  };
}
