#!/usr/bin/env node
// @ts-check
// The demo's backbone: no pretrained weights can be downloaded offline, so the demo builds a small conv net
// locally (test-utils' buildTinyConvBackbone: conv 3x3 -> conv 3x3 stride 2 -> global average pool 'features',
// random weights from a fixed seed) as an ONNX file. Frozen random conv features of the generated images are
// separable enough for a trained head to pass the demo's 90% test-accuracy gate (eval-model measures it on the
// test split, which neither the backbone nor train ever saw).
//
//   node scripts/demo-backbone.mjs --dir demo/backbone --size 64
//
// When random weights are not good enough (scripts/demo.mjs does this when the demo's eval gate fails with them,
// or with --trained-backbone), --train-on DATASET trains a small conv net end to end with TensorFlow.js on
// WebAssembly on the dataset's *training split only* (val and test stay unseen, so eval-model's test accuracy
// stays honest) and saves it as a TF.js layers model whose 'features' layer (the global average pool) is the
// backbone's output; it records "tf" preprocessing, which train and serve then apply.
//
//   node scripts/demo-backbone.mjs --dir demo/backbone-trained --train-on demo/prep [--epochs 4]
//
// Prints the backbone's path on stdout. Needs `npx tsc -b`.
import { mkdir, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs } from 'node:util';

const { values } = parseArgs({
  options: {
    dir: { type: 'string', default: 'demo/backbone' },
    size: { type: 'string', default: '64' },
    seed: { type: 'string', default: '3' },
    'train-on': { type: 'string' },
    epochs: { type: 'string', default: '4' },
  },
});
const size = Number(values.size);
if (!Number.isInteger(size) || size < 8) {
  process.stderr.write(`demo-backbone: expected --size to be an integer >= 8, got '${values.size}'\n`);
  process.exit(2);
}
const building = `${values.dir}.tmp-${process.pid}`;
await rm(building, { recursive: true, force: true });
if (values['train-on']) {
  const accuracy = await trainBackbone(values['train-on'], building, Number(values.epochs));
  await rm(values.dir, { recursive: true, force: true });
  await rename(building, values.dir);
  process.stderr.write(
    `demo-backbone: trained a small conv net end to end on the training split of ${values['train-on']} only ` +
      `(train accuracy ${(accuracy * 100).toFixed(1)}%); its global-average-pool layer 'features' is the backbone at ${values.dir}\n`,
  );
  process.stdout.write(`${join(values.dir, 'model.json')}\n`);
} else {
  const { buildTinyConvBackbone } = await import('@imgpipe/test-utils');
  const backbone = await buildTinyConvBackbone({ dir: building, inputSize: size, format: 'onnx', channels: [16, 32], seed: Number(values.seed) });
  await rm(values.dir, { recursive: true, force: true });
  await rename(building, values.dir);
  process.stderr.write(
    `demo-backbone: built a small conv backbone with random weights (${backbone.featureDim} features from layer '${backbone.featureLayer}', ` +
      `${size}x${size} input) at ${values.dir}; the demo uses it because pretrained weights cannot be downloaded offline\n`,
  );
  process.stdout.write(`${join(values.dir, 'model.onnx')}\n`);
}

/**
 * Trains avgpool-conv8-pool-conv16-pool-conv16-GAP('features')-softmax on the train split; returns the last train accuracy.
 * @param {string} datasetDir @param {string} dir @param {number} epochs @returns {Promise<number>}
 */
async function trainBackbone(datasetDir, dir, epochs) {
  const [{ fileSaveHandler, loadTf }, { registerTrainingKernels }, { openDataset }] = await Promise.all([
    import('@imgpipe/engines'),
    import('@imgpipe/training-kernels'),
    import('@imgpipe/kit'),
  ]);
  // WebAssembly, with the conv gradient kernels it lacks (@imgpipe/training-kernels' wasm-grad-kernels.ts).
  const { tf } = await loadTf('wasm');
  registerTrainingKernels(tf);
  const dataset = await openDataset(datasetDir);
  const { image_size: side, classes } = dataset.manifest;
  const count = dataset.manifest.splits.train.count;
  const pixels = await dataset.readPixels('train', 0, count);
  const labels = await dataset.labels('train');
  // "tf" preprocessing (pixel / 127.5 - 1), recorded in model.json so train and serve apply the same.
  const x = tf.tidy(() => tf.sub(tf.div(tf.tensor4d(pixels, [count, side, side, 3], 'float32'), 127.5), 1));
  const y = tf.tidy(() => tf.oneHot(tf.tensor1d(labels, 'int32'), classes.length));
  const seed = 11;
  const input = tf.input({ shape: [side, side, 3], name: 'input' });
  // Averaging 4x4 first and few channels keep the training to seconds per epoch on 2 cores.
  let h = tf.layers.averagePooling2d({ name: 'shrink', poolSize: Math.max(1, Math.floor(side / 16)) }).apply(input);
  for (const [i, filters] of [8, 16, 16].entries()) {
    h = tf.layers
      .conv2d({
        name: `conv${i + 1}`,
        filters,
        kernelSize: 3,
        padding: 'same',
        activation: 'relu',
        kernelInitializer: tf.initializers.heNormal({ seed: seed + i }),
      })
      .apply(h);
    if (i < 2) h = tf.layers.maxPooling2d({ name: `pool${i + 1}`, poolSize: 2 }).apply(h);
  }
  const features = tf.layers.globalAveragePooling2d({ name: 'features' }).apply(h);
  const logits = tf.layers.dense({
    name: 'logits',
    units: classes.length,
    activation: 'softmax',
    kernelInitializer: tf.initializers.glorotUniform({ seed }),
  });
  const output = /** @type {import('@imgpipe/engines/tfjs-parts').SymbolicTensor} */ (logits.apply(features));
  const model = tf.model({ inputs: input, outputs: output, name: 'demo_backbone' });
  model.compile({ optimizer: tf.train.adam(0.003), loss: 'categoricalCrossentropy', metrics: ['accuracy'] });
  let accuracy = 0;
  await model.fit(x, y, {
    epochs,
    batchSize: 32,
    shuffle: true,
    verbose: 0,
    callbacks: {
      onEpochEnd: (epoch, logs) => {
        accuracy = logs?.acc ?? logs?.accuracy ?? 0;
        process.stderr.write(`demo-backbone: epoch ${epoch + 1}/${epochs} loss ${logs?.loss?.toFixed(4)} train accuracy ${accuracy.toFixed(4)}\n`);
      },
    },
  });
  model.setUserDefinedMetadata({ imgpipe: { preprocess: 'tf' } });
  await mkdir(dir, { recursive: true });
  await model.save(fileSaveHandler(dir));
  tf.dispose([x, y]);
  model.dispose();
  return accuracy;
}
