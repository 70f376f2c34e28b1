import assert from 'node:assert/strict';
import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import * as tf from '@imgpipe/engines/tfjs-parts';
import { buildTinyConvBackbone, makeTempDir, tinyConvReference, type TempDir } from '@imgpipe/test-utils';
import { buildMobileNetV1, type MobileNetFiles } from './test-mobilenet-model.js';
import { quietCpuBackend } from './test-quiet-cpu.js';
import { randomizeWeights } from './test-random-weights.js';
import { loadBackbone, type Backbone, type LoadBackboneOptions } from '@imgpipe/engines';
import { UsageError } from '@imgpipe/kit';
import { Head } from '@imgpipe/engines';
import { createLogger, type Logger } from '@imgpipe/kit';
import { loadModel, saveModelDir } from '@imgpipe/engines';
import { readModelCard, type ModelCard } from '@imgpipe/kit';
import { createRng } from '@imgpipe/kit';
import { loadTf } from '@imgpipe/engines';
import { fileSaveHandler } from '@imgpipe/engines';

// A MobileNet v1 shaped TF.js layers model (random weights) through loadBackbone: converted to ONNX and run on
// ONNX Runtime (--device cpu) against TF.js on wasm (--device wasm). Tolerance: max absolute difference 1e-4.
const TOLERANCE = 1e-4;
const SIZE = 64;
const COUNT = 4;

function capturingLog(): { log: Logger; text: () => string } {
  const lines: string[] = [];
  const stream = { write: (line: string) => lines.push(line) > 0 } as unknown as NodeJS.WritableStream;
  return { log: createLogger({ name: 'test', stream, debug: true }), text: () => lines.join('') };
}

function maxDiff(a: Float32Array, b: Float32Array): number {
  assert.equal(a.length, b.length);
  let max = 0;
  for (let i = 0; i < a.length; i++) max = Math.max(max, Math.abs(a[i]! - b[i]!));
  return max;
}

describe('TF.js layers backbones on ONNX Runtime through loadBackbone', () => {
  let temp: TempDir;
  let mobilenet: MobileNetFiles;
  let pixels: Uint8Array;
  const open: Backbone[] = [];
  const load = async (path: string, options: LoadBackboneOptions) => {
    const backbone = await loadBackbone(path, options);
    open.push(backbone);
    return backbone;
  };

  before(async () => {
    temp = await makeTempDir('imgpipe-tfjs-on-onnx-');
    mobilenet = await buildMobileNetV1({ dir: join(temp.path, 'mobilenet'), layout: 'keras', alpha: 0.25, inputSize: SIZE, seed: 5 });
    const rand = createRng(21);
    pixels = Uint8Array.from({ length: COUNT * SIZE * SIZE * 3 }, () => Math.floor(rand() * 256));
  });
  after(async () => {
    for (const b of open) await b.dispose();
    await temp.remove();
  });

  it("test-utils' tiny TF.js model: converted features equal TF.js's and the plain-loop reference within 1e-4", async () => {
    const tiny = await buildTinyConvBackbone({ dir: join(temp.path, 'tiny'), inputSize: 16, seed: 3, format: 'tfjs-layers' });
    const rand = createRng(8);
    const small = Uint8Array.from({ length: COUNT * 16 * 16 * 3 }, () => Math.floor(rand() * 256));
    const options = { featureLayer: tiny.featureLayer, preprocess: 'tf', cacheDir: join(temp.path, 'cache-tiny') };
    const onnx = await load(tiny.path, { ...options, device: 'cpu' });
    const tfjs = await load(tiny.path, { ...options, device: 'wasm', workers: 1 });
    assert.equal(onnx.info.engine, 'onnxruntime');
    const [a, b] = [await onnx.extract(small, COUNT), await tfjs.extract(small, COUNT)];
    const reference = tinyConvReference(
      tiny.weights,
      Float32Array.from(small, (p) => p / 127.5 - 1),
      COUNT,
      16,
    );
    assert.ok(maxDiff(a, b) <= TOLERANCE, `vs TF.js: max abs difference ${maxDiff(a, b)}`);
    assert.ok(maxDiff(a, reference) <= TOLERANCE, `vs reference: max abs difference ${maxDiff(a, reference)}`);
  });

  it('MobileNet v1 shaped, global-pool features: the same as TF.js within 1e-4, recorded as converted', async () => {
    const cacheDir = join(temp.path, 'cache-a');
    const { log, text } = capturingLog();
    const onnx = await load(mobilenet.path, { device: 'cpu', featureLayer: 'global_pool', cacheDir, log });
    const tfjs = await load(mobilenet.path, { device: 'wasm', featureLayer: 'global_pool', cacheDir, workers: 1 });
    assert.equal(onnx.info.engine, 'onnxruntime');
    assert.equal(onnx.info.converted_from, 'tfjs-layers');
    assert.equal(onnx.info.format, 'onnx');
    assert.equal(onnx.info.layout, 'NHWC');
    assert.equal(onnx.info.source_sha256, tfjs.info.sha256, 'the TF.js model it came from, by the hash TF.js records');
    assert.deepEqual(onnx.info.preprocess, tfjs.info.preprocess);
    assert.equal(onnx.info.preprocess.name, 'tf');
    assert.equal(onnx.info.feature_layer, 'global_pool');
    assert.equal(onnx.info.feature_dim, mobilenet.featureDim);
    assert.equal(onnx.info.input_size, SIZE);
    assert.equal(onnx.device, 'cpu');
    assert.equal(onnx.files.length, 1);
    assert.ok(onnx.files[0]!.startsWith(join(cacheDir, 'converted')) && onnx.files[0]!.endsWith('model.onnx'), onnx.files[0]);
    assert.match(text(), /no --preprocess given, using tf/);
    assert.match(text(), /converted the TF\.js layers model to ONNX/);
    const [a, b] = [await onnx.extract(pixels, COUNT), await tfjs.extract(pixels, COUNT)];
    assert.ok(
      b.some((v) => v > 0.01),
      'the reference has signal',
    );
    assert.ok(maxDiff(a, b) <= TOLERANCE, `max abs difference ${maxDiff(a, b)}`);
  });

  it('default features (the model output, softmax) and a cut on a middle layer match TF.js', async () => {
    const cacheDir = join(temp.path, 'cache-b');
    for (const featureLayer of [undefined, ...mobilenet.innerLayers]) {
      const onnx = await load(mobilenet.path, { device: 'cpu', cacheDir, preprocess: 'tf', ...(featureLayer ? { featureLayer } : {}) });
      const tfjs = await load(mobilenet.path, { device: 'wasm', workers: 1, cacheDir, preprocess: 'tf', ...(featureLayer ? { featureLayer } : {}) });
      assert.equal(onnx.info.engine, 'onnxruntime');
      assert.equal(onnx.info.feature_layer, tfjs.info.feature_layer);
      assert.equal(onnx.info.feature_dim, tfjs.info.feature_dim);
      const [a, b] = [await onnx.extract(pixels, COUNT), await tfjs.extract(pixels, COUNT)];
      assert.ok(maxDiff(a, b) <= TOLERANCE, `${featureLayer ?? 'default'}: max abs difference ${maxDiff(a, b)}`);
    }
    assert.equal((await readdir(join(cacheDir, 'converted'))).length, 3, 'one conversion per feature layer');
    await assert.rejects(loadBackbone(mobilenet.path, { device: 'cpu', featureLayer: 'nope', cacheDir }), (error: Error) => {
      assert.ok(error instanceof UsageError);
      assert.match(error.message, /--feature-layer 'nope' is not a layer of .*conv_pw_1/);
      return true;
    });
  });

  it('the conversion is cached: a second load reuses the file without rewriting it', async () => {
    const cacheDir = join(temp.path, 'cache-c');
    const first = await load(mobilenet.path, { device: 'cpu', featureLayer: 'global_pool', cacheDir });
    const before = await stat(first.files[0]!);
    const { log, text } = capturingLog();
    const second = await load(mobilenet.path, { device: 'cpu', featureLayer: 'global_pool', cacheDir, log });
    assert.equal(second.files[0], first.files[0]);
    const after = await stat(second.files[0]!);
    assert.equal(after.ino, before.ino, 'same file, not replaced by a rename');
    assert.equal(after.mtimeMs, before.mtimeMs);
    assert.doesNotMatch(text(), /converted the TF\.js layers model/);
    assert.match(text(), /ONNX conversion cached at/);
    assert.deepEqual((await readdir(join(cacheDir, 'converted'))).length, 1);
    assert.deepEqual((await readdir(join(cacheDir, 'converted', (await readdir(join(cacheDir, 'converted')))[0]!))).sort(), [
      'conversion.json',
      'model.onnx',
    ]);
    assert.deepEqual(await second.extract(pixels, 2), await first.extract(pixels, 2));
  });

  it('--device wasm keeps TF.js (no conversion)', async () => {
    const cacheDir = join(temp.path, 'cache-d');
    const backbone = await load(mobilenet.path, { device: 'wasm', featureLayer: 'global_pool', workers: 1, cacheDir });
    assert.equal(backbone.info.engine, 'tfjs');
    assert.equal(backbone.info.format, 'tfjs-layers');
    assert.equal(backbone.info.converted_from, undefined);
    await assert.rejects(readdir(join(cacheDir, 'converted')), { code: 'ENOENT' });
  });

  it('--device cuda / webgpu: ONNX Runtime first; where it cannot, TF.js on that device, else an error saying why', async () => {
    // No GPU, no ONNX Runtime CUDA provider and no tfjs-node-gpu here: both engines refuse, and the log says so.
    for (const device of ['cuda', 'webgpu'] as const) {
      const { log, text } = capturingLog();
      await assert.rejects(
        loadBackbone(mobilenet.path, { device, featureLayer: 'global_pool', cacheDir: join(temp.path, 'cache-g'), log }),
        (error: Error) => {
          assert.ok(error instanceof UsageError, error.message);
          assert.match(error.message, new RegExp(`--device ${device} is not available`));
          return true;
        },
      );
      assert.match(
        text(),
        device === 'cuda'
          ? /CUDA provider is not installed, so the TF\.js layers model runs on TF\.js/
          : /webgpu.*the TF\.js layers model runs on TF\.js/,
      );
    }
  });

  it('a layer outside the list (Conv2DTranspose) keeps the model on TF.js and the log names it; a cut before it converts', async () => {
    quietCpuBackend();
    const input = tf.input({ shape: [12, 12, 3] });
    const conv = tf.layers.conv2d({ name: 'conv', filters: 4, kernelSize: 3, padding: 'same', activation: 'relu' }).apply(input) as tf.SymbolicTensor;
    const up = tf.layers.conv2dTranspose({ name: 'upsample', filters: 3, kernelSize: 2, strides: 2 }).apply(conv) as tf.SymbolicTensor;
    const pooled = tf.layers.globalAveragePooling2d({ name: 'pool' }).apply(up) as tf.SymbolicTensor;
    const model = tf.model({ inputs: input, outputs: pooled });
    randomizeWeights(model, 3);
    const dir = join(temp.path, 'transpose');
    await model.save(fileSaveHandler(dir));
    model.dispose();
    const cacheDir = join(temp.path, 'cache-e');
    const { log, text } = capturingLog();
    const backbone = await load(join(dir, 'model.json'), { device: 'cpu', preprocess: 'tf', cacheDir, log, workers: 1 });
    assert.equal(backbone.info.engine, 'tfjs');
    assert.equal(backbone.info.format, 'tfjs-layers');
    assert.match(text(), /layer 'upsample' \(Conv2DTranspose\) has no ONNX conversion, so it runs on TF\.js/);
    await assert.rejects(readdir(join(cacheDir, 'converted')), { code: 'ENOENT' }, 'nothing cached for a model that did not convert');
    const rand = createRng(4);
    const small = Uint8Array.from({ length: 2 * 12 * 12 * 3 }, () => Math.floor(rand() * 256));
    const reference = await load(join(dir, 'model.json'), { device: 'wasm', preprocess: 'tf', workers: 1 });
    assert.deepEqual(await backbone.extract(small, 2), await reference.extract(small, 2));

    const cut = await load(join(dir, 'model.json'), { device: 'cpu', preprocess: 'tf', featureLayer: 'conv', cacheDir });
    assert.equal(cut.info.engine, 'onnxruntime', 'only the layers the feature layer depends on need to convert');
    const cutReference = await load(join(dir, 'model.json'), { device: 'wasm', preprocess: 'tf', featureLayer: 'conv', workers: 1 });
    const [a, b] = [await cut.extract(small, 2), await cutReference.extract(small, 2)];
    assert.ok(maxDiff(a, b) <= TOLERANCE, `max abs difference ${maxDiff(a, b)}`);
  });

  it('a model directory saved from the converted backbone keeps the ONNX file and loads in loadModel', async () => {
    const { tf: tfw } = await loadTf('wasm');
    const backbone = await load(mobilenet.path, { device: 'cpu', featureLayer: 'global_pool', cacheDir: join(temp.path, 'cache-f') });
    const head = new Head(tfw, { inputDim: backbone.info.feature_dim, classes: 2, layer_size: 4, dropout: 0, lr: 0.01, batch_size: 4, seed: 1 });
    const card: ModelCard = {
      format: 'imgpipe-model/1',
      labels: ['cat', 'dog'],
      input: { size: SIZE, channels: 3, fit: 'fill' },
      preprocess: backbone.info.preprocess,
      backbone: { ...backbone.info, path: '' },
      head: { path: 'head/model.json', layer_size: 4, dropout: 0, lr: 0.01, epochs: 1, batch_size: 4 },
      metrics: {},
      dataset: { manifest_sha256: 'abc' },
      created: new Date().toISOString(),
      versions: {},
    };
    const layers = head.toLayersModel();
    const modelDir = join(temp.path, 'model');
    await saveModelDir(modelDir, { card, backboneFiles: backbone.files, head: layers });
    layers.dispose();
    const saved = await readModelCard(modelDir);
    assert.equal(saved.backbone.path, 'backbone/model.onnx');
    assert.equal(saved.backbone.format, 'onnx');
    assert.equal(saved.backbone.layout, 'NHWC');
    assert.equal(saved.backbone.converted_from, 'tfjs-layers');
    assert.equal(saved.backbone.engine, 'onnxruntime');
    const features = await backbone.extract(pixels, COUNT);
    const expected = tfw.tidy(() => head.predict(tfw.tensor2d(features, [COUNT, backbone.info.feature_dim])).dataSync());
    head.dispose();
    for (const device of ['cpu', 'wasm'] as const) {
      const model = await loadModel(modelDir, { device });
      const probs = await model.predict(pixels, COUNT);
      await model.dispose();
      for (let i = 0; i < probs.length; i++)
        assert.ok(Math.abs(probs[i]! - expected[i]!) < 1e-5, `${device} prob ${i}: ${probs[i]} vs ${expected[i]}`);
    }
  });
});
