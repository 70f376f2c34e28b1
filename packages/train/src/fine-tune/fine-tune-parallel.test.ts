import assert from 'node:assert/strict';
import { cp, readFile, truncate } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { openDataset, type BackboneInfo, type Dataset } from '@imgpipe/kit';
import { fileSaveHandler, Head, loadBackbone, loadTf, type Tf } from '@imgpipe/engines';
import { buildTinyConvBackbone, makeTempDir, type TempDir } from '@imgpipe/test-utils';
import { buildMobileNetV1 } from '@imgpipe/engines/test-mobilenet-model';
import { fineTune, type FineTuneResult } from './fine-tune.js';
import { averageGradients, shardSizes, syncBatchNorm } from './fine-tune-parallel.js';
import { FineTuneWorkers, type ShardStep } from './fine-tune-worker-pool.js';
import { TEST_SIZE, writeLearnableDataset } from '@imgpipe/test-utils';

let temp: TempDir;
let tf: Tf;
let dataset: Dataset;
let net: { path: string; featureLayer: string };
let info: BackboneInfo;
let headJson: string;

before(async () => {
  temp = await makeTempDir('imgpipe-fine-tune-parallel-');
  dataset = await openDataset(await writeLearnableDataset(join(temp.path, 'data'), { train: 16, val: 8, test: 2 }));
  ({ tf } = await loadTf('wasm'));
  tf.env().set('IS_TEST', false); // see fine-tune.test.ts
  net = await buildMobileNetV1({ dir: join(temp.path, 'mobilenet'), alpha: 0.25, inputSize: TEST_SIZE, blocks: 4, seed: 2 });
  const backbone = await loadBackbone(net.path, { device: 'wasm', featureLayer: net.featureLayer, preprocess: 'torch', workers: 1 });
  info = backbone.info;
  await backbone.dispose();
  const head = new Head(tf, { inputDim: info.feature_dim, classes: 2, layer_size: 8, dropout: 0, lr: 0.01, batch_size: 8, seed: 1 });
  const headModel = head.toLayersModel();
  await headModel.save(fileSaveHandler(join(temp.path, 'head')));
  headModel.dispose();
  head.dispose();
  headJson = join(temp.path, 'head', 'model.json');
});
after(() => temp.remove());

type Extra = {
  epochs?: number;
  lr?: number;
  backboneModelJson?: string;
  backboneInfo?: BackboneInfo;
  headModelJson?: string;
  mode?: 'all' | 'bn';
  bnStatistics?: 'frozen' | 'update';
  batchSize?: number;
  microBatch?: number;
};
function tune(name: string, workers: number, extra: Extra = {}): Promise<FineTuneResult> {
  return fineTune({
    tf,
    dataset,
    backboneModelJson: net.path,
    backboneInfo: info,
    headModelJson: headJson,
    mode: 'bn',
    epochs: 1,
    lr: 0.01,
    batchSize: 16,
    seed: 3,
    outDir: join(temp.path, name),
    workers,
    ...extra,
  });
}

/** Threads of this process (workers are threads; terminated ones are gone). */
async function threads(): Promise<number> {
  return Number(/^Threads:\s+(\d+)/m.exec(await readFile('/proc/self/status', 'utf8'))![1]);
}

test('shards are contiguous and as even as can be; gradients are averaged by shard size', () => {
  assert.deepEqual(shardSizes(7, 2), [4, 3]);
  assert.deepEqual(shardSizes(1, 2), [1, 0]);
  const step = (count: number, g: number[] | null): ShardStep => ({
    count,
    loss: 0,
    accuracy: 0,
    gradients: g && [Float32Array.from(g)],
    tensors: 0,
  });
  assert.deepEqual(averageGradients([step(3, [1, 2]), step(1, [5, 6])]), [Float32Array.from([2, 3])]);
  assert.deepEqual(averageGradients([step(1, [4, 8]), step(0, null)]), [Float32Array.from([4, 8])]);
});

test('2 workers train like 1 (one step of 16), record their number, rerun byte-identically', async () => {
  const tensors = tf.memory().numTensors;
  const one = await tune('one', 1);
  const two = await tune('two', 2);
  const again = await tune('again', 2);
  assert.equal(tf.memory().numTensors, tensors, 'no tensors left in this thread');
  assert.equal(one.workers, 1);
  assert.equal(two.workers, 2);
  // BatchNorm on its frozen moving statistics: splitting the batch changes nothing but rounding.
  const [a, b] = [one.history[0]!, two.history[0]!];
  assert.ok(Math.abs(a.train_loss - b.train_loss) < 1e-5, `train loss of the step: 1 worker ${a.train_loss}, 2 workers ${b.train_loss}`);
  assert.ok(Math.abs(a.val_loss - b.val_loss) < 1e-5, `val loss after the step: 1 worker ${a.val_loss}, 2 workers ${b.val_loss}`);
  // On batch statistics (update), each worker normalises its shard of 8 with that shard's: close, not the same.
  const [c, d] = [
    (await tune('one-update', 1, { bnStatistics: 'update' })).history[0]!,
    (await tune('two-update', 2, { bnStatistics: 'update' })).history[0]!,
  ];
  assert.ok(Math.abs(c.train_loss - d.train_loss) < 0.05, `update: train loss of the step: 1 worker ${c.train_loss}, 2 workers ${d.train_loss}`);
  assert.ok(Math.abs(c.train_loss - d.train_loss) > 1e-5, "update: shard statistics differ from the batch's");
  assert.notEqual(two.backboneSha256, info.sha256, 'the backbone was trained');
  const { seconds: _s1, history: h1, headModelJson: _j1, backboneFiles: _f1, ...rest1 } = two;
  const { seconds: _s2, history: h2, headModelJson: _j2, backboneFiles: _f2, ...rest2 } = again;
  assert.deepEqual(rest2, rest1, 'same record and backbone sha256');
  assert.deepEqual(
    h2.map(({ seconds: _, ...e }) => e),
    h1.map(({ seconds: _, ...e }) => e),
    'same history',
  );
  for (const file of ['head/model.json', 'head/weights.bin', 'backbone/weights.bin']) {
    assert.deepEqual(await readFile(join(temp.path, 'again', file)), await readFile(join(temp.path, 'two', file)), file);
  }
});

test('micro-batches accumulate their gradients: a batch of 16 as micro-batches of 4 (or 8 over 2 workers) trains like one of 16', async () => {
  const whole = await tune('acc-whole', 1, { epochs: 2 });
  const micro = await tune('acc-micro', 1, { epochs: 2, microBatch: 4 });
  const microWorkers = await tune('acc-micro-workers', 2, { epochs: 2, microBatch: 8 });
  assert.equal(micro.batch_size, 16);
  assert.equal(micro.micro_batch, 4);
  assert.equal(microWorkers.micro_batch, 8);
  assert.equal(whole.micro_batch, 16);
  for (const result of [micro, microWorkers]) {
    for (const [i, e] of whole.history.entries()) {
      const f = result.history[i]!;
      for (const key of ['train_loss', 'val_loss'] as const)
        assert.ok(Math.abs(e[key] - f[key]) < 1e-5, `epoch ${i + 1} ${key}: whole ${e[key]}, micro-batches of ${result.micro_batch} ${f[key]}`);
    }
  }
  // Batches of 4 (four steps an epoch, not one) train otherwise.
  const small = await tune('acc-small', 1, { epochs: 2, batchSize: 4 });
  assert.ok(
    Math.abs(small.history[1]!.val_loss - whole.history[1]!.val_loss) > 1e-4,
    `batches of 4: ${small.history[1]!.val_loss} vs ${whole.history[1]!.val_loss}`,
  );
});

test('without BatchNorm, a step split across 2 workers is the step of 1 (gradients averaged by shard size)', async () => {
  const tiny = await buildTinyConvBackbone({ dir: join(temp.path, 'tiny'), inputSize: TEST_SIZE, format: 'tfjs-layers', seed: 1 });
  const backbone = await loadBackbone(tiny.path, { device: 'wasm', featureLayer: 'features', preprocess: 'torch', workers: 1 });
  await backbone.dispose();
  const head = new Head(tf, { inputDim: backbone.info.feature_dim, classes: 2, layer_size: 8, dropout: 0, lr: 0.01, batch_size: 8, seed: 1 });
  const headModel = head.toLayersModel();
  await headModel.save(fileSaveHandler(join(temp.path, 'tiny-head')));
  headModel.dispose();
  head.dispose();
  const extra = {
    backboneModelJson: tiny.path,
    backboneInfo: backbone.info,
    headModelJson: join(temp.path, 'tiny-head', 'model.json'),
    mode: 'all' as const,
    epochs: 2,
  };
  const [one, two] = [await tune('tiny-one', 1, extra), await tune('tiny-two', 2, extra)];
  for (const [i, e] of one.history.entries()) {
    const f = two.history[i]!;
    for (const key of ['train_loss', 'val_loss'] as const)
      assert.ok(Math.abs(e[key] - f[key]) < 1e-5, `epoch ${i + 1} ${key}: 1 worker ${e[key]}, 2 workers ${f[key]}`);
  }
  assert.notEqual(two.backboneSha256, backbone.info.sha256);
});

test('workers keep the trainable weights identical across unequal shards, and their tensors flat from step to step', async () => {
  const pool = await FineTuneWorkers.start(2, {
    backboneModelJson: net.path,
    headModelJson: headJson,
    featureLayer: net.featureLayer,
    mode: 'bn',
    bnStatistics: 'update',
    lr: 0.01,
    inputSize: TEST_SIZE,
    preprocess: info.preprocess,
    classes: 2,
  });
  try {
    const image = TEST_SIZE * TEST_SIZE * 3;
    const after: number[][] = [];
    for (let step = 0; step < 4; step++) {
      const sizes = [3, 2];
      const steps = await pool.all<ShardStep>((i) => {
        const pixels = Uint8Array.from({ length: sizes[i]! * image }, (_, j) => (j * (7 + i + step)) % 256);
        const oneHot = Float32Array.from({ length: sizes[i]! * 2 }, (_, j) => (((j >> 1) + i) % 2 === j % 2 ? 1 : 0));
        return { message: { type: 'step', pixels, oneHot, count: sizes[i]! } };
      });
      assert.ok(steps.every((s) => Number.isFinite(s.loss) && s.gradients!.length === pool.ready.variables.length));
      const applied = await pool.all<number>(() => ({ message: { type: 'apply', gradients: averageGradients(steps), lr: 0.01 } }));
      const digests = await pool.all<string>(() => ({ message: { type: 'digest' } }));
      assert.equal(digests[0], digests[1], `step ${step}: the same trainable weights in both workers`);
      after.push([...steps.map((s) => s.tensors), ...applied]);
    }
    // The first step makes Adam's slots; from then on every step and every apply ends with as many tensors.
    assert.deepEqual(after.slice(2), [after[1], after[1]], `tensors per worker after step and apply: ${JSON.stringify(after)}`);
    await syncBatchNorm(pool);
  } finally {
    await pool.close();
  }
});

test('a worker that fails stops fine-tuning with a message saying why, and no worker is left running', async () => {
  const broken = join(temp.path, 'broken');
  await cp(join(temp.path, 'mobilenet'), broken, { recursive: true });
  await truncate(join(broken, 'weights.bin'), 100);
  const baseline = await threads();
  await assert.rejects(tune('broken-out', 2, { backboneModelJson: join(broken, 'model.json') }), (e: Error) =>
    /a fine-tuning worker failed to build the model: .*should have 216 values but has 25/.test(e.message),
  );
  assert.ok((await threads()) <= baseline, 'the workers are gone');
});
