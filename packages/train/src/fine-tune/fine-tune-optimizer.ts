import type { Tf } from '@imgpipe/engines';
import type { LayersModel } from './fine-tune-model.js';

/** Adam for fine-tuning: trainOnBatch's step keeps its gradients (take), which are applied later, summed, at a given rate. */
export interface GradientKeeper {
  optimizer: InstanceType<Tf['AdamOptimizer']>;
  /** The gradients of the mean loss of the last trainOnBatch, one array per trainable weight. */
  take(): Float32Array[];
  /** Apply gradients (one array per trainable weight, in take's order) with learning rate lr. */
  apply(gradients: Float32Array[], lr: number): void;
}

/**
 * An Adam (tf.train.adam's defaults) for `model`'s trainable weights whose minimize() (trainOnBatch's step: the
 * layers' training mode, the compiled loss and accuracy) keeps the gradients instead of applying them. Compile the
 * model with `optimizer` after this.
 */
export function keepGradientsAdam(tf: Tf, model: LayersModel, lr: number): GradientKeeper {
  // trainOnBatch's gradients are keyed by the names of the variables behind the trainable weights.
  const names = model.trainableWeights.map((w) => (w.read() as unknown as { name: string }).name);
  const shapes = model.trainableWeights.map((w) => w.shape as number[]);
  type Gradients = Parameters<InstanceType<typeof tf.AdamOptimizer>['applyGradients']>[0];

  class KeepGradientsAdam extends tf.AdamOptimizer {
    kept: Float32Array[] | null = null;
    applying = false;
    override applyGradients(gradients: Gradients): void {
      if (this.applying) {
        super.applyGradients(gradients);
        return;
      }
      const list = Array.isArray(gradients) ? gradients : names.map((name) => ({ name, tensor: gradients[name]! }));
      if (list.map((g) => g.name).join('\n') !== names.join('\n'))
        throw new Error('trainOnBatch computed gradients of other variables than the trainable weights');
      this.kept = list.map((g) => new Float32Array(g.tensor.dataSync() as Float32Array));
    }
  }
  const optimizer = new KeepGradientsAdam(lr, 0.9, 0.999);
  return {
    optimizer,
    take() {
      const kept = optimizer.kept;
      if (!kept) throw new Error('no gradients kept: trainOnBatch did not run');
      optimizer.kept = null;
      return kept;
    },
    apply(gradients, rate) {
      (optimizer as unknown as { learningRate: number }).learningRate = rate;
      const tensors = names.map((name, i) => ({ name, tensor: tf.tensor(gradients[i]!, shapes[i]) }));
      optimizer.applying = true;
      try {
        optimizer.applyGradients(tensors);
      } finally {
        optimizer.applying = false;
        tf.dispose(tensors.map((t) => t.tensor));
      }
    },
  };
}

/** into + weight * add, element-wise (into is created when undefined). */
export function accumulate(into: Float32Array[] | undefined, add: Float32Array[], weight: number): Float32Array[] {
  if (!into) return add.map((a) => (weight === 1 ? a : a.map((v) => v * weight)));
  for (const [v, a] of add.entries()) {
    const target = into[v]!;
    for (let j = 0; j < a.length; j++) target[j]! += weight * a[j]!;
  }
  return into;
}
