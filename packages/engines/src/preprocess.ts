import { UsageError, type PreprocessSpec } from '@imgpipe/kit';

const PREPROCESS_NAMES = ['torch', 'tf', 'caffe', 'efficientnet-lite', 'none'] as const;

/**
 * keras.applications' names: torch = [0,1] then ImageNet mean/std, tf = [-1,1], caffe = BGR minus ImageNet means;
 * efficientnet-lite = (x - 127) / 128, as the Model Zoo's EfficientNet-Lite4 expects.
 */
export function preprocessSpec(name: string): PreprocessSpec {
  switch (name) {
    case 'torch':
      return { name, scale: 1 / 255, mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225], channel_order: 'RGB' };
    case 'tf':
      return { name, scale: 1 / 127.5, mean: [1, 1, 1], std: [1, 1, 1], channel_order: 'RGB' };
    case 'caffe':
      return { name, scale: 1, mean: [103.939, 116.779, 123.68], std: [1, 1, 1], channel_order: 'BGR' };
    case 'efficientnet-lite':
      return { name, scale: 1, mean: [127, 127, 127], std: [128, 128, 128], channel_order: 'RGB' };
    case 'none':
      return { name, scale: 1, mean: [0, 0, 0], std: [1, 1, 1], channel_order: 'RGB' };
    default:
      throw new UsageError(`expected --preprocess to be one of ${PREPROCESS_NAMES.join(', ')}, got '${name}'`);
  }
}

/**
 * The one preprocessing function used by feature extraction, training, eval-model and serve: uint8 RGB NHWC
 * pixels (count images of size x size) to float32 in the model's layout. For BGR, mean/std index the model's
 * channels (caffe's means are B, G, R).
 */
export function preprocessPixels(
  pixels: Uint8Array,
  count: number,
  size: number,
  spec: PreprocessSpec,
  layout: 'NHWC' | 'NCHW' = 'NHWC',
  out: Float32Array = new Float32Array(count * size * size * 3),
): Float32Array {
  const plane = size * size;
  if (pixels.length < count * plane * 3) throw new RangeError(`expected ${count * plane * 3} bytes of pixels, got ${pixels.length}`);
  const { scale } = spec;
  const bgr = spec.channel_order === 'BGR';
  // Per model channel c: a[c] * pixel + b[c], reading source channel src[c].
  const src = bgr ? [2, 1, 0] : [0, 1, 2];
  const a = [0, 1, 2].map((c) => scale / spec.std[c]!);
  const b = [0, 1, 2].map((c) => -spec.mean[c]! / spec.std[c]!);
  const [s0, s1, s2] = src as [number, number, number];
  const [a0, a1, a2] = a as [number, number, number];
  const [b0, b1, b2] = b as [number, number, number];
  for (let n = 0; n < count; n++) {
    const base = n * plane * 3;
    if (layout === 'NHWC') {
      for (let p = 0, i = base; p < plane; p++, i += 3) {
        out[i] = pixels[i + s0]! * a0 + b0;
        out[i + 1] = pixels[i + s1]! * a1 + b1;
        out[i + 2] = pixels[i + s2]! * a2 + b2;
      }
    } else {
      for (let p = 0, i = base; p < plane; p++, i += 3) {
        out[base + p] = pixels[i + s0]! * a0 + b0;
        out[base + plane + p] = pixels[i + s1]! * a1 + b1;
        out[base + 2 * plane + p] = pixels[i + s2]! * a2 + b2;
      }
    }
  }
  return out;
}
