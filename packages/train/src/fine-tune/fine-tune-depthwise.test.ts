import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { createLogger, openDataset, silentLogger, type ProgressEvent } from '@imgpipe/kit';
import { fileSaveHandler, Head, loadBackbone, loadTf, type Tf } from '@imgpipe/engines';
import { makeTempDir, type TempDir } from '@imgpipe/test-utils';
import { buildMobileNetV1 } from '@imgpipe/engines/test-mobilenet-model';
import { fineTune, type FineTuneMode } from './fine-tune.js';
import { outputFloatsPerImage, wasmMicroBatch, wasmTrainingBatch } from './fine-tune-memory.js';
import { TEST_SIZE, writeLearnableDataset } from '@imgpipe/test-utils';

let temp: TempDir;
let dataDir: string;
let tf: Tf;

before(async () => {
  temp = await makeTempDir('imgpipe-fine-tune-dw-');
  dataDir = await writeLearnableDataset(join(temp.path, 'data'), { train: 20, val: 8, test: 2 });
  ({ tf } = await loadTf('wasm'));
  tf.env().set('IS_TEST', false); // see fine-tune.test.ts: leaks are checked with tf.memory().numTensors
});
after(() => temp.remove());

/** Fine-tune a small MobileNet-shaped backbone (stride-2 depthwise blocks) on wasm; returns the log and progress. */
async function fineTuneMobileNet(
  name: string,
  mode: FineTuneMode,
  layout: 'keras' | 'tfjs-models',
  epochs: number,
  leaks = { tensors: 0, bytes: 0 },
  workers?: number,
) {
  const net = await buildMobileNetV1({ dir: join(temp.path, name), alpha: 0.25, inputSize: TEST_SIZE, blocks: 4, layout, seed: 2 });
  const backbone = await loadBackbone(net.path, { device: 'wasm', featureLayer: net.featureLayer, preprocess: 'torch', workers: 1 });
  await backbone.dispose();
  const head = new Head(tf, { inputDim: backbone.info.feature_dim, classes: 2, layer_size: 8, dropout: 0, lr: 0.01, batch_size: 8, seed: 1 });
  const headModel = head.toLayersModel();
  await headModel.save(fileSaveHandler(join(temp.path, `${name}-head`)));
  headModel.dispose();
  head.dispose();
  const lines: string[] = [];
  const stream = new PassThrough();
  stream.on('data', (chunk: Buffer) => lines.push(String(chunk)));
  const events: (ProgressEvent & { tensors: number })[] = [];
  const { numTensors: tensors, numBytes: bytes } = tf.memory();
  const result = await fineTune({
    log: createLogger({ name: 'train', stream }),
    tf,
    dataset: await openDataset(dataDir),
    backboneModelJson: net.path,
    backboneInfo: backbone.info,
    headModelJson: join(temp.path, `${name}-head`, 'model.json'),
    mode,
    epochs,
    lr: 0.01,
    batchSize: 8,
    seed: 3,
    outDir: join(temp.path, `${name}-out`),
    ...(workers ? { workers } : {}),
    onProgress: (event) => events.push({ ...event, tensors: tf.memory().numTensors }),
  });
  assert.ok(tf.memory().numTensors - tensors <= leaks.tensors, `${name}: ${tf.memory().numTensors - tensors} tensors left`);
  assert.ok(tf.memory().numBytes - bytes <= leaks.bytes, `${name}: ${tf.memory().numBytes - bytes} bytes left`);
  assert.equal(tf.getBackend(), 'wasm', `${name}: back on wasm`);
  return { result, lines, events, net };
}

test('fine-tuning a MobileNet-shaped backbone runs on wasm (no cpu fallback), reports per-epoch progress, keeps tensors flat', async () => {
  for (const [mode, layout] of [
    ['all', 'keras'],
    ['bn', 'tfjs-models'],
  ] as const) {
    const { result, lines, events } = await fineTuneMobileNet(`mobilenet-${mode}`, mode, layout, 3);
    assert.ok(!lines.some((l) => /cpu backend|warn/.test(l)), `${mode}: no fallback warning: ${lines.join('')}`);
    assert.equal(result.history.length, 3);
    assert.ok(
      result.history.every((e) => Number.isFinite(e.train_loss) && Number.isFinite(e.val_loss)),
      `${mode}: finite losses`,
    );
    assert.ok(
      lines.some((l) => /fine-tune epoch 3\/3: .*training images\/s/.test(l)),
      `${mode}: the epoch line gives images/s: ${lines.join('')}`,
    );
    for (let epoch = 1; epoch <= 3; epoch++) {
      const mine = events.filter((e) => e.label === `fine-tune epoch ${epoch}/3`);
      assert.equal(mine[0]!.status, 'start');
      assert.equal(mine.at(-1)!.status, 'done');
      assert.ok(
        mine.every((e) => e.total === 20 && e.done <= 20),
        `${mode}: counted in images`,
      );
      assert.equal(mine.at(-1)!.done, 20);
      for (let i = 1; i < mine.length; i++) assert.ok(mine[i]!.done >= mine[i - 1]!.done, 'progress never decreases');
    }
    // The optimizer makes its slots in the first step; from then on every epoch ends with as many tensors.
    const ends = events.filter((e) => e.status === 'done').map((e) => e.tensors);
    assert.equal(ends.length, 3);
    assert.deepEqual(ends, [ends[0], ends[0], ends[0]], `${mode}: the same number of tensors after every epoch`);
  }
});

test('a gradient kernel missing on wasm falls back to the cpu backend with a warning, before or during training', async () => {
  // Before: the layer-class check sees the missing kernel. During: one outside that check (Step: relu's gradient)
  // fails the first step.
  for (const kernelName of ['DepthwiseConv2dNativeBackpropFilter', 'Step']) {
    const config = tf.getKernel(kernelName, 'wasm')!;
    tf.unregisterKernel(kernelName, 'wasm');
    try {
      // A step that fails inside tfjs-layers' trainOnBatch leaves its two scalars (loss, accuracy) behind; fineTune
      // disposes the rest (the forward pass's tensors saved for the gradient). One worker: the kernel is missing from
      // this thread's wasm, not from a worker's.
      const leaks = kernelName === 'Step' ? { tensors: 2, bytes: 8 } : undefined;
      const { result, lines } = await fineTuneMobileNet(`fallback-${kernelName}`, 'all', 'tfjs-models', 1, leaks, 1);
      const warning = lines.find((l) => l.startsWith("train: warn: fine-tuning on TF.js's JavaScript cpu backend"));
      assert.ok(warning?.includes(kernelName), `warns naming ${kernelName}: ${lines.join('')}`);
      assert.equal(result.history.length, 1);
    } finally {
      tf.registerKernel(config);
    }
  }
});

test('fine-tuning on wasm splits a batch into micro-batches that fit its heap, and says so (MobileNet v1 0.5 at 224: 17 of 32)', () => {
  const input = tf.input({ shape: [4, 4, 3] });
  const conv = tf.layers.conv2d({ filters: 2, kernelSize: 3, padding: 'same' });
  const flat = tf.layers.flatten();
  const model = tf.model({ inputs: input, outputs: flat.apply(conv.apply(input)) as ReturnType<Tf['input']> });
  assert.equal(outputFloatsPerImage(model.layers), 48 + 32 + 32);
  model.dispose();
  assert.equal(wasmTrainingBatch(32, 7.72e6), 17, 'MobileNet v1 0.5 at 224 (7.72 M floats of layer outputs per image)');
  assert.equal(wasmTrainingBatch(32, 3.93e6), 32, 'MobileNet v1 0.25 at 224 fits');
  assert.equal(wasmTrainingBatch(4, 1e9), 1, 'never below 1');
  const lines: string[] = [];
  const log = { ...silentLogger, warn: (line: string) => void lines.push(line) };
  assert.equal(wasmMicroBatch(32, 2, 7.72e6, 'frozen', log), 32, 'shards of 16 fit');
  assert.deepEqual(lines, []);
  assert.equal(wasmMicroBatch(32, 1, 7.72e6, 'frozen', log), 17);
  assert.match(
    lines[0]!,
    /batches of 32 as 2 micro-batches of at most 17, gradients accumulated.*the same updates as one batch \(BatchNormalization statistics are frozen\)/,
  );
  assert.equal(wasmMicroBatch(64, 2, 7.72e6, 'update', log), 34);
  assert.match(
    lines[1]!,
    /batches of 64 as 2 micro-batches of at most 34.*each of 2 workers.*normalises each micro-batch's shards with its own statistics/,
  );
});
