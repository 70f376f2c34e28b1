import { createFeatureSet, type FeatureSet } from '@imgpipe/engines';

/** Training-set augmentation of train --augment: 'none', or 'flip' (each training image and its mirror). */
export type Augment = 'none' | 'flip';

/** The training rows followed by their mirrored rows (same labels): twice the rows for the heads. */
export function appendMirrored(plain: FeatureSet, mirrored: Float32Array): FeatureSet {
  const features = new Float32Array(plain.features.length * 2);
  features.set(plain.features);
  features.set(mirrored, plain.features.length);
  const labels = new Int32Array(plain.count * 2);
  labels.set(plain.labels);
  labels.set(plain.labels, plain.count);
  return createFeatureSet(features, labels, plain.dim, plain.classes);
}
