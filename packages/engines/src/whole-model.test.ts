import assert from 'node:assert/strict';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { buildLayersHead, loadBackbone, loadModel, loadTf, saveModelDir, type LoadBackboneOptions } from '@imgpipe/engines';
import { createRng, InputError, openModelDir, readModelCard, type ModelCard } from '@imgpipe/kit';
import { buildTinyConvBackbone, makeTempDir, runOnnxInPython, type TempDir } from '@imgpipe/test-utils';
import { buildMobileNetV1 } from './test-mobilenet-model.js';
import { buildResnet50Backbones } from './test-resnet50-model.js';

// model.onnx, the whole classifier in one file, against imgpipe's two-part path (backbone + TF.js head) on the
// same 20 images, and in runtimes that are not imgpipe's: onnx's full checker, OpenCV's DNN module and
// onnxruntime-web on its WebAssembly backend (another build of ONNX Runtime, the one browsers use).
const SIZE = 32;
const COUNT = 20;
const LABELS = ['cat', 'dog', 'bird'];

function maxDiff(a: Float32Array, b: Float32Array): number {
  assert.equal(a.length, b.length);
  let max = 0;
  for (let i = 0; i < a.length; i++) max = Math.max(max, Math.abs(a[i]! - b[i]!));
  return max;
}

/** A model directory from a backbone and a seeded Dense(16, relu) -> Dropout -> Dense(softmax) head. */
async function writeModelDir(dir: string, backboneSpec: string, options: LoadBackboneOptions, wholeModel = true): Promise<string> {
  const { tf } = await loadTf('wasm');
  const backbone = await loadBackbone(backboneSpec, options);
  const rng = createRng(3);
  const dim = backbone.info.feature_dim;
  const fill = (n: number, scale: number) => Float32Array.from({ length: n }, () => (rng() - 0.5) * scale);
  const weights = {
    w1: tf.tensor2d(fill(dim * 16, 4 / Math.sqrt(dim)), [dim, 16]),
    b1: tf.tensor1d(fill(16, 0.2)),
    w2: tf.tensor2d(fill(16 * LABELS.length, 1), [16, LABELS.length]),
    b2: tf.tensor1d(fill(LABELS.length, 0.2)),
  };
  const head = buildLayersHead(tf, { inputDim: dim, classes: LABELS.length, layer_size: 16, dropout: 0.5 }, weights);
  tf.dispose(Object.values(weights));
  const card: ModelCard = {
    format: 'imgpipe-model/1',
    labels: LABELS,
    input: { size: backbone.info.input_size, channels: 3, fit: 'fill' },
    preprocess: backbone.info.preprocess,
    backbone: { ...backbone.info, path: '' },
    head: { path: 'head/model.json', layer_size: 16, dropout: 0.5, lr: 0.01, epochs: 1, batch_size: 8 },
    metrics: {},
    dataset: { manifest_sha256: 'test' },
    created: new Date().toISOString(),
    versions: {},
  };
  try {
    await saveModelDir(dir, { card, backboneFiles: backbone.files, head, wholeModel });
  } finally {
    head.dispose();
    await backbone.dispose();
  }
  return dir;
}

/** model.onnx on onnxruntime-web's wasm backend (one thread), as a browser would run it. */
async function predictOnWeb(path: string, pixels: Uint8Array, count: number): Promise<{ probabilities: Float32Array; version: string }> {
  const ort = await import('onnxruntime-web');
  ort.env.wasm.numThreads = 1;
  const session = await ort.InferenceSession.create(new Uint8Array(await readFile(path)), { executionProviders: ['wasm'] });
  try {
    const results = await session.run({ pixels: new ort.Tensor('uint8', pixels, [count, SIZE, SIZE, 3]) });
    return { probabilities: new Float32Array(results.probabilities!.data as Float32Array), version: ort.env.versions.web ?? '' };
  } finally {
    await session.release();
  }
}

async function predictBothWays(modelDir: string, device: 'cpu' | 'wasm', pixels: Uint8Array): Promise<{ whole: Float32Array; parts: Float32Array }> {
  const whole = await loadModel(modelDir, { device, workers: 1 });
  const parts = await loadModel(modelDir, { device, workers: 1, wholeModel: false });
  try {
    return { whole: await whole.predict(pixels, COUNT), parts: await parts.predict(pixels, COUNT) };
  } finally {
    await whole.dispose();
    await parts.dispose();
  }
}

describe('model.onnx: the whole classifier in one ONNX file', () => {
  let temp: TempDir;
  let pixels: Uint8Array;
  const dirs: Record<string, string> = {};

  before(async () => {
    temp = await makeTempDir('imgpipe-whole-model-');
    const rand = createRng(11);
    pixels = Uint8Array.from({ length: COUNT * SIZE * SIZE * 3 }, () => Math.floor(rand() * 256));
    const resnet = await buildResnet50Backbones({ dir: join(temp.path, 'resnet'), inputSize: SIZE, seed: 4 });
    dirs.resnet = await writeModelDir(join(temp.path, 'resnet-model'), resnet.onnx, {
      device: 'cpu',
      featureLayer: resnet.featureLayer,
      preprocess: 'torch',
      inputSize: SIZE,
    });
    const keras = await buildMobileNetV1({
      dir: join(temp.path, 'mobilenet-keras'),
      layout: 'keras',
      alpha: 0.25,
      inputSize: SIZE,
      seed: 5,
      blocks: 4,
    });
    dirs.tfjs = await writeModelDir(join(temp.path, 'tfjs-model'), keras.path, {
      device: 'wasm',
      featureLayer: keras.featureLayer,
      preprocess: 'tf',
      inputSize: SIZE,
      workers: 1,
    });
    const tfjsModels = await buildMobileNetV1({
      dir: join(temp.path, 'mobilenet-tfjs'),
      layout: 'tfjs-models',
      alpha: 0.25,
      inputSize: SIZE,
      seed: 6,
      blocks: 4,
    });
    dirs.converted = await writeModelDir(join(temp.path, 'converted-model'), tfjsModels.path, {
      device: 'cpu',
      featureLayer: tfjsModels.featureLayer,
      preprocess: 'tf',
      inputSize: SIZE,
      cacheDir: join(temp.path, 'cache'),
    });
  });
  after(() => temp.remove());

  const cases = [
    ['resnet', 'a ResNet-shaped ONNX backbone', 'onnx', 'cpu'],
    ['tfjs', 'a MobileNet-shaped TF.js backbone (on TF.js; converted at export)', 'tfjs-layers', 'wasm'],
    ['converted', 'a MobileNet-shaped TF.js backbone converted to ONNX at training (Relu6 as Clip)', 'onnx', 'cpu'],
  ] as const;
  for (const [key, what, format, device] of cases) {
    it(`${what}: card lists model.onnx; its probabilities equal the two-part path within 1e-5 on ${COUNT} images`, async () => {
      const card = await readModelCard(dirs[key]!);
      assert.equal(card.backbone.format, format);
      assert.deepEqual(card.onnx, { path: 'model.onnx', input: 'pixels', output: 'probabilities', opset: card.onnx?.opset });
      assert.ok(card.files?.some((f) => f.path === 'model.onnx' && /^[0-9a-f]{64}$/.test(f.sha256)));
      const { whole, parts } = await predictBothWays(dirs[key]!, device, pixels);
      assert.equal(whole.length, COUNT * LABELS.length);
      const diff = maxDiff(whole, parts);
      assert.ok(diff <= 1e-5, `max difference ${diff}`);
      assert.ok(
        whole.some((p) => p > 0.01 && p < 0.99),
        'probabilities are not all saturated (the comparison says something)',
      );
    });

    it(`${what}: onnx's full checker passes; OpenCV's DNN module and onnxruntime-web (wasm) give the same probabilities within 1e-4`, async () => {
      const modelDir = dirs[key]!;
      const ours = await loadModel(modelDir, { device: 'cpu' });
      const expected = await ours.predict(pixels, COUNT).finally(() => ours.dispose());
      const python = await runOnnxInPython(join(modelDir, 'model.onnx'), pixels, COUNT, SIZE);
      assert.deepEqual(python.shape, [COUNT, LABELS.length]);
      const diff = maxDiff(python.probabilities, expected);
      assert.ok(diff <= 1e-4, `OpenCV ${python.opencv} differs by ${diff}`);
      assert.deepEqual(JSON.parse(python.metadata.labels!), LABELS);
      assert.equal(JSON.parse(python.metadata.preprocess!).name, (await readModelCard(modelDir)).preprocess.name);
      assert.match(python.metadata.input!, /uint8 \[batch, 32, 32, 3\], RGB, NHWC/);
      assert.equal(python.opset, 13);
      assert.ok(!python.ops.includes('Identity') && !python.ops.includes('Clip'), `plain ops only: ${python.ops.join(', ')}`);
      if (key === 'converted') {
        // Relu6 before a 'same' conv: the conv's weights take the 6, so no Mul is left for ONNX Runtime to run.
        assert.ok(
          (python.op_counts.HardSigmoid ?? 0) > 0 && (python.op_counts.Mul ?? 0) < python.op_counts.HardSigmoid!,
          JSON.stringify(python.op_counts),
        );
      }
      const web = await predictOnWeb(join(modelDir, 'model.onnx'), pixels, COUNT);
      const webDiff = maxDiff(web.probabilities, expected);
      assert.ok(webDiff <= 1e-4, `onnxruntime-web ${web.version} differs by ${webDiff}`);
    });
  }

  it('a backbone exported with a fixed batch size of 1: model.onnx keeps it, and loadModel runs larger batches in chunks', async () => {
    const tiny = await buildTinyConvBackbone({ dir: join(temp.path, 'fixed-batch'), inputSize: SIZE, seed: 2, format: 'onnx', fixedBatch: 1 });
    const dir = await writeModelDir(join(temp.path, 'fixed-batch-model'), tiny.path, {
      device: 'cpu',
      featureLayer: tiny.featureLayer,
      preprocess: 'torch',
      inputSize: SIZE,
    });
    const python = await runOnnxInPython(join(dir, 'model.onnx'), pixels.subarray(0, SIZE * SIZE * 3), 1, SIZE);
    assert.match(python.metadata.input!, /uint8 \[1, 32, 32, 3\]/);
    const { whole, parts } = await predictBothWays(dir, 'cpu', pixels);
    assert.ok(maxDiff(whole, parts) <= 1e-5);
  });

  it('a changed or missing model.onnx is refused like any other file of the directory', async () => {
    const dir = await writeModelDir(join(temp.path, 'tamper'), join(dirs.resnet!, 'backbone'), {
      device: 'cpu',
      featureLayer: 'features',
      inputSize: SIZE,
    });
    const path = join(dir, 'model.onnx');
    const bytes = await readFile(path);
    bytes.writeUInt8(bytes.readUInt8(bytes.length - 1) ^ 1, bytes.length - 1);
    await writeFile(path, bytes);
    await assert.rejects(openModelDir(dir), (e: Error) => e instanceof InputError && e.message.includes('model.onnx') && /sha256/.test(e.message));
    await rm(path);
    await assert.rejects(loadModel(dir, { device: 'cpu' }), (e: Error) => e instanceof InputError && /model\.onnx: missing/.test(e.message));
  });

  it('a directory written without model.onnx (as older versions did) loads by its two parts', async () => {
    const dir = await writeModelDir(
      join(temp.path, 'older'),
      join(dirs.resnet!, 'backbone'),
      { device: 'cpu', featureLayer: 'features', inputSize: SIZE },
      false,
    );
    const card = await readModelCard(dir);
    assert.equal(card.onnx, undefined);
    assert.ok(!card.files?.some((f) => f.path === 'model.onnx'));
    const model = await loadModel(dir, { device: 'cpu' });
    const reference = await loadModel(dirs.resnet!, { device: 'cpu' });
    try {
      assert.ok(maxDiff(await model.predict(pixels, COUNT), await reference.predict(pixels, COUNT)) <= 1e-5);
    } finally {
      await model.dispose();
      await reference.dispose();
    }
  });
});
