// Test-only (excluded from the build by tsconfig): a tiny model directory for the engines, eval and serve tests, built from
// a TF.js conv backbone and a dense head with seeded weights, saved through engines' saveModelDir so that
// loadModel reads it exactly as it reads a trained one.
import { join } from 'node:path';
import { createRng, type ModelCard } from '@imgpipe/kit';
import { buildTinyConvBackbone } from '@imgpipe/test-utils';
import { loadBackbone } from './backbone.js';
import { buildLayersHead } from './head.js';
import { saveModelDir } from './model-load.js';
import { loadTf } from './tfjs-load.js';

export const TEST_LABELS = ['cat', 'dog'];
export const TEST_SIZE = 32;

/**
 * Build <dir>/model: test-utils' tiny conv backbone (ONNX by default, run by ONNX Runtime in this thread;
 * 32x32, features = its global pool) and a dense head 8 -> 16 -> classes with seeded weights; model.onnx too unless
 * wholeModel is false.
 */
export async function buildTestModelDir(
  dir: string,
  options: {
    labels?: string[];
    seed?: number;
    format?: 'onnx' | 'tfjs-layers';
    size?: number;
    channels?: [number, number];
    backbone?: string;
    featureLayer?: string;
    wholeModel?: boolean;
  } = {},
): Promise<string> {
  const labels = options.labels ?? TEST_LABELS;
  const rng = createRng(options.seed ?? 7);
  const random = () => rng() - 0.5;
  const { tf } = await loadTf('wasm');
  const fill = (n: number, scale: number) => Float32Array.from({ length: n }, () => random() * scale);
  const size = options.size ?? TEST_SIZE;
  let backbone: Awaited<ReturnType<typeof loadBackbone>>;
  if (options.backbone) {
    backbone = await loadBackbone(options.backbone, {
      device: 'wasm',
      inputSize: size,
      workers: 1,
      preprocess: 'torch',
      ...(options.featureLayer ? { featureLayer: options.featureLayer } : {}),
    });
  } else {
    const tiny = await buildTinyConvBackbone({
      dir: join(dir, 'tiny-backbone'),
      inputSize: size,
      seed: options.seed ?? 7,
      format: options.format ?? 'onnx',
      ...(options.channels ? { channels: options.channels } : {}),
    });
    backbone = await loadBackbone(tiny.path, { device: 'wasm', featureLayer: tiny.featureLayer, preprocess: 'torch', inputSize: size, workers: 1 });
  }
  const dim = backbone.info.feature_dim;
  const weights = {
    w1: tf.tensor2d(fill(dim * 16, 2), [dim, 16]),
    b1: tf.tensor1d(fill(16, 0.5)),
    w2: tf.tensor2d(fill(16 * labels.length, 4), [16, labels.length]),
    b2: tf.tensor1d(fill(labels.length, 0.5)),
  };
  const head = buildLayersHead(tf, { inputDim: dim, classes: labels.length, layer_size: 16, dropout: 0 }, weights);
  tf.dispose(Object.values(weights));
  const modelDir = join(dir, 'model');
  const card: ModelCard = {
    format: 'imgpipe-model/1',
    labels,
    input: { size: backbone.info.input_size, channels: 3, fit: 'fill' },
    preprocess: backbone.info.preprocess,
    backbone: { ...backbone.info, path: '' },
    head: { path: 'head/model.json', layer_size: 16, dropout: 0, lr: 0.01, epochs: 1, batch_size: 8 },
    metrics: {},
    dataset: { manifest_sha256: 'test' },
    created: new Date().toISOString(),
    versions: {},
  };
  await saveModelDir(modelDir, { card, backboneFiles: backbone.files, head, ...(options.wholeModel === false ? { wholeModel: false } : {}) });
  head.dispose();
  await backbone.dispose();
  return modelDir;
}
