import type { LoadedModel } from './model-load.js';
import { mirrorImages } from './mirror.js';

/** Test-time augmentation: 'none', or 'flip' (average the softmax of each image and its mirror). */
export type Tta = 'none' | 'flip';

/**
 * The model with test-time augmentation: for 'flip', each predict() runs the images and their mirrors in one
 * call of 2*count images and returns the mean of the two softmax rows (still a probability distribution).
 */
export function withTta<M extends Pick<LoadedModel, 'labels' | 'inputSize' | 'predict'>>(model: M, tta: Tta): M {
  if (tta === 'none') return model;
  const classes = model.labels.length;
  const area = model.inputSize * model.inputSize * 3;
  const predict = async (pixels: Uint8Array, count: number): Promise<Float32Array> => {
    if (count === 0 || pixels.length !== count * area) return model.predict(pixels, count); // the model's own check names the sizes
    const both = new Uint8Array(2 * count * area);
    both.set(pixels);
    both.set(mirrorImages(pixels, count, model.inputSize), count * area);
    const probs = await model.predict(both, 2 * count);
    const out = new Float32Array(count * classes);
    const half = count * classes;
    for (let i = 0; i < half; i += 1) out[i] = (probs[i]! + probs[half + i]!) / 2;
    return out;
  };
  return { ...model, predict };
}
