import * as tf from './tfjs-parts.js';
import { createRng } from '@imgpipe/kit';

/**
 * Give every weight of a TF.js layers model deterministic random values that keep activations near unit scale:
 * kernels He-uniform over their fan-in, biases and BatchNorm beta / moving mean small, gamma and moving variance
 * around 1 (so BatchNorm does real work at inference, unlike its initial identity statistics).
 */
export function randomizeWeights(model: tf.LayersModel, seed: number): void {
  const rand = createRng(seed);
  const uniform = (n: number, low: number, high: number) => Float32Array.from({ length: n }, () => low + (high - low) * rand());
  for (const layer of model.layers) {
    const weights = layer.weights;
    if (weights.length === 0) continue;
    const values = weights.map((w) => {
      const shape = w.shape as number[];
      const size = shape.reduce((a, b) => a * b, 1);
      const kind = w.originalName.split('/').pop()!.replace(/_\d+$/, '');
      if (kind === 'gamma' || kind === 'moving_variance') return tf.tensor(uniform(size, 0.5, 1.5), shape);
      if (kind === 'beta' || kind === 'moving_mean' || kind === 'bias') return tf.tensor(uniform(size, -0.2, 0.2), shape);
      const fanIn = kind === 'depthwise_kernel' ? shape[0]! * shape[1]! : size / shape[shape.length - 1]!;
      const limit = Math.sqrt(6 / fanIn);
      return tf.tensor(uniform(size, -limit, limit), shape);
    });
    layer.setWeights(values);
    tf.dispose(values);
  }
}
