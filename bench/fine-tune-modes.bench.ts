// What train --fine-tune costs and what it does to accuracy, per mode, on photo-like data: crops of Debian's real
// photographs (test-utils' buildPhotoSet), two classes made of two disjoint sets of source photos, prep-data to
// --size px; a MobileNet v1 shaped TF.js layers backbone (test-utils' buildMobileNetV1, --alpha; random weights:
// nothing can be downloaded here, so it is not pretrained, and the accuracy effect is not ImageNet's; its
// BatchNormalization moving statistics are set to those of the training photos, layer by layer, so that its
// features are not washed out: random but normalised features, the nearest to a pretrained backbone here). For the frozen
// sweep and each --fine-tune mode (--modes): train wall time, the sweep's feature-extraction seconds and engine
// (ONNX Runtime with or without --fine-tune), fine-tuning seconds, val accuracy before and after (the best epoch),
// which model was kept, and eval-model's test accuracy.
// Usage: IMGPIPE_BENCH_FILTER=fine-tune-modes node scripts/run-bench.mjs [--images 240] [--size 96] [--alpha 0.25]
//        [--epochs 3] [--modes bn,last:8,all] [--patience 2] [--blocks 13] [--bn-statistics frozen,update]
import { readFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { parseArgs } from 'node:util';
import { runEvalModel } from '@imgpipe/eval';
import { fileLoadHandler, fileSaveHandler, loadTf, preprocessPixels, preprocessSpec } from '@imgpipe/engines';
import { csvString, openDataset } from '@imgpipe/kit';
import { runPrepData } from '@imgpipe/prep-data';
import { buildPhotoSet, makeTempDir, photoSources, writeBenchResults, type BenchResult } from '@imgpipe/test-utils';
import { buildMobileNetV1 } from '@imgpipe/engines/test-mobilenet-model';
import { runTrain, type BatchNormStatistics, type FineTuneMode } from '@imgpipe/train';

const { values } = parseArgs({
  options: {
    images: { type: 'string', default: '240' },
    size: { type: 'string', default: '96' },
    alpha: { type: 'string', default: '0.25' },
    epochs: { type: 'string', default: '3' },
    modes: { type: 'string', default: 'bn,last:8,all' },
    patience: { type: 'string', default: '2' },
    blocks: { type: 'string', default: '13' },
    'bn-statistics': { type: 'string', default: 'frozen,update' },
  },
});
const [images, size, epochs, patience] = [values.images, values.size, values.epochs, values.patience].map(Number) as [number, number, number, number];
const modes = values.modes.split(',') as FineTuneMode[];
const statistics = values['bn-statistics'].split(',') as BatchNormStatistics[];
const results: BenchResult[] = [];
const temp = await makeTempDir('imgpipe-bench-fine-tune-modes-');
try {
  const sources = await photoSources();
  const classes = [sources.filter((_, i) => i % 2 === 0), sources.filter((_, i) => i % 2 === 1)];
  const rows = [];
  for (const [label, classSources] of classes.entries()) {
    const paths = await buildPhotoSet({ dir: join(temp.path, `photos-${label}`), count: images / 2, seed: 7 + label, sources: classSources });
    rows.push(
      ...paths.map((path) => ({ bucket: 'bench', s3_image: `photos/${label}/${basename(path)}`, category: `set${label}`, label, local_image: path })),
    );
  }
  const csvPath = join(temp.path, 'images.csv');
  const csv = Buffer.from(await csvString(['bucket', 's3_image', 'category', 'label', 'local_image'], rows));
  const dataDir = join(temp.path, 'prep');
  await runPrepData({
    csv,
    csvSource: csvPath,
    out: dataDir,
    size,
    fractions: { train: 0.6, val: 0.2, test: 0.2 },
    seed: 42,
    quiet: true,
    concurrency: 2,
  });
  const random = await buildMobileNetV1({
    dir: join(temp.path, 'mobilenet-random'),
    alpha: Number(values.alpha),
    inputSize: size,
    blocks: Number(values.blocks),
    seed: 1,
  });
  const net = { ...random, path: await calibrateBatchNorm(random.path, dataDir, join(temp.path, 'mobilenet')) };
  const common = {
    images,
    size,
    backbone: `mobilenet v1 ${values.alpha}, ${values.blocks} blocks (TF.js layers, random weights, BatchNorm statistics calibrated on the photos)`,
    classes: `${classes[0]!.map((p) => basename(p)).join('+')} vs ${classes[1]!.map((p) => basename(p)).join('+')}`,
    grid: 'lr 0.01,0.1 x layer 64 x dropout 0.2 x epochs 30, batch 16',
  };
  const train = (name: string, mode?: FineTuneMode, bnStatistics?: BatchNormStatistics) =>
    runTrain({
      dataDir,
      out: join(temp.path, `runs-${name}`),
      backbone: net.path,
      featureLayer: net.featureLayer,
      preprocess: 'tf',
      cacheDir: join(temp.path, `cache-${name}`),
      space: { lr: [0.01, 0.1], layer_size: [64], dropout: [0.2], batch_size: [16], epochs: [30] },
      strategy: 'grid',
      runs: 0,
      seed: 42,
      device: 'cpu',
      extractBatchSize: 32,
      ...(mode ? { fineTune: { mode, epochs, patience, ...(bnStatistics ? { bnStatistics } : {}) } } : {}),
    });
  await train('warm-up'); // loads TF.js and ONNX Runtime once, outside the timings
  const runs = [{}, ...modes.flatMap((mode) => statistics.map((bnStatistics) => ({ mode, bnStatistics })))] as {
    mode?: FineTuneMode;
    bnStatistics?: BatchNormStatistics;
  }[];
  for (const { mode, bnStatistics } of runs) {
    const label = mode ? `--fine-tune ${mode}${bnStatistics === 'update' ? ' --fine-tune-bn-statistics update' : ''}` : 'frozen';
    const started = performance.now();
    const trained = await train(mode ? `${mode.replace(':', '-')}-${bnStatistics}` : 'frozen', mode, bnStatistics);
    const seconds = (performance.now() - started) / 1000;
    const run = JSON.parse(await readFile(join(trained.runDir, 'run.json'), 'utf8'));
    const tuned = run.fine_tune;
    const { result } = await runEvalModel({ runDir: trained.runDir, device: 'cpu', batchSize: 32, tta: 'none' });
    const params = {
      ...common,
      mode: mode ?? 'frozen',
      sweep_extraction_engine: run.backbone.engine,
      feature_extraction_seconds: run.timings.feature_extraction_seconds,
      sweep_val_accuracy: trained.best.val_accuracy,
      ...(tuned
        ? {
            fine_tune_epochs: epochs,
            fine_tune_patience: patience,
            fine_tune_epochs_run: tuned.epochs_run,
            fine_tune_best_epoch: tuned.best_epoch,
            fine_tune_val_accuracy: tuned.val_accuracy,
            fine_tune_history: tuned.history.map((h: { val_accuracy: number; val_loss: number }) => [h.val_accuracy, h.val_loss]),
            bn_statistics: tuned.bn_statistics,
            batch_size: tuned.batch_size,
            micro_batch: tuned.micro_batch,
            kept: tuned.kept,
          }
        : {}),
    };
    process.stderr.write(
      `fine-tune-modes bench: ${label}: train ${seconds.toFixed(1)}s, val ${trained.best.val_accuracy.toFixed(4)}${tuned ? ` -> ${tuned.val_accuracy.toFixed(4)} (${tuned.kept})` : ''}, test ${result.test_accuracy.toFixed(4)}\n`,
    );
    results.push(
      { name: `train wall time, ${label}`, unit: 's', value: seconds, params },
      ...(tuned ? [{ name: `fine-tuning seconds, ${label}`, unit: 's', value: tuned.seconds, params }] : []),
      {
        name: `val accuracy of the saved model, ${label}`,
        unit: 'accuracy',
        value: tuned?.kept === 'fine-tuned' ? tuned.val_accuracy : trained.best.val_accuracy,
        params,
      },
      {
        name: `test accuracy (eval-model), ${label}`,
        unit: 'accuracy',
        value: result.test_accuracy,
        params: { ...params, test_loss: result.test_loss },
      },
    );
  }
} finally {
  await temp.remove();
}
await writeBenchResults('fine-tune-modes', results);

/** The model at modelJson with every BatchNormalization's moving mean and variance those of its input on the training images, saved in dir. */
async function calibrateBatchNorm(modelJson: string, dataDir: string, dir: string): Promise<string> {
  const { tf } = await loadTf('wasm');
  const dataset = await openDataset(dataDir);
  const count = Math.min(64, dataset.manifest.splits.train.count);
  const pixels = await dataset.readPixels('train', 0, count);
  const model = await tf.loadLayersModel(fileLoadHandler(tf.io, modelJson));
  const x = tf.tensor4d(preprocessPixels(pixels, count, size, preprocessSpec('tf'), 'NHWC'), [count, size, size, 3]);
  for (const layer of model.layers) {
    if (layer.getClassName() !== 'BatchNormalization') continue;
    const upTo = tf.model({ inputs: model.inputs, outputs: layer.input as ReturnType<typeof tf.input> });
    const [gamma, beta] = layer.getWeights();
    const { mean, variance } = tf.tidy(() => tf.moments(upTo.predict(x) as ReturnType<typeof tf.tensor>, [0, 1, 2]));
    layer.setWeights([gamma!, beta!, mean, variance]);
    tf.dispose([mean, variance]);
  }
  x.dispose();
  await model.save(fileSaveHandler(dir));
  model.dispose();
  return join(dir, 'model.json');
}
