// The costs docs/scale-out.md works from, on this machine:
//  1. one head trial at Dogs-vs-Cats scale (ResNet50's 2048 features, 17,500 train and 3,750 val images, 3 epochs)
//     for each of the seed's layer sizes, on random features;
//  2. the same sweep (ResNet50 with random weights at 224, the seed's 3x3 grid) as one `train` process and as
//     Slurm array tasks through deploy/slurm/submit-sweep.sh on a single-node cluster on loopback (needs root and
//     Debian's slurm-wlm and munge): wall time, extraction and trials apart, and the overhead per task.
// Usage: IMGPIPE_BENCH_FILTER=scale-out node scripts/run-bench.mjs [--images 300] [--shards 2] [--device wasm]
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { execa } from 'execa';
import { createFeatureSet, loadTf, parseDevice } from '@imgpipe/engines';
import { createRng } from '@imgpipe/kit';
import { writeBenchResults, type BenchResult } from '@imgpipe/test-utils';
import { makeTempDir, startSlurmCluster, writeSyntheticDataset } from '@imgpipe/test-utils';
import { buildResnet50Backbones } from '@imgpipe/engines/test-resnet50-model';
import { runTrial } from './sweep/trial.js';

const { values } = parseArgs({
  options: {
    images: { type: 'string', default: '300' },
    shards: { type: 'string', default: '2' },
    device: { type: 'string', default: 'wasm' },
    'trial-images': { type: 'string', default: '17500' },
  },
});
const device = parseDevice(values.device);
const ROOT = fileURLToPath(new URL('../../..', import.meta.url));
const TRAIN = join(ROOT, 'packages/train/bin/train.js');
const results: BenchResult[] = [];

// 1. One trial at scale.
{
  const { tf } = await loadTf(device);
  const dim = 2048;
  const rng = createRng(1);
  const make = (count: number) => {
    const features = new Float32Array(count * dim).map(() => rng() * 2);
    const labels = Int32Array.from({ length: count }, () => (rng() < 0.5 ? 0 : 1));
    return createFeatureSet(features, labels, dim, 2);
  };
  const trainCount = Number(values['trial-images']);
  const features = { train: make(trainCount), val: make(Math.round(trainCount * (15 / 70))), dim, classes: 2 };
  for (const layer of [256, 512, 1024]) {
    const trial = { index: 0, id: 't001', seed: 1, params: { lr: 0.001, layer_size: layer, dropout: 0.5, batch_size: 32, epochs: 3 } };
    const record = await runTrial(tf, features, trial);
    const params = { train_images: trainCount, val_images: features.val.count, dim, layer_size: layer, epochs: 3, device };
    results.push({ name: `one trial, layer ${layer}: seconds`, unit: 's', value: record.seconds, params });
  }
}

// 2. One process vs Slurm tasks.
const temp = await makeTempDir('imgpipe-bench-scale-');
const cluster = await startSlurmCluster({ cpus: 2 });
try {
  const images = Number(values.images);
  const counts = {
    train: Math.round(images * 0.7),
    val: Math.round(images * 0.15),
    test: images - Math.round(images * 0.7) - Math.round(images * 0.15),
  };
  const dataDir = await writeSyntheticDataset({ dir: join(temp.path, 'data'), size: 224, counts });
  const backbone = (await buildResnet50Backbones({ dir: join(temp.path, 'models') })).onnx;
  const sweep = [
    '--backbone',
    backbone,
    '--feature-layer',
    'features',
    '--preprocess',
    'torch',
    '--device',
    values.device!,
    '--lr',
    '0.001,0.005,0.01',
    '--layer-size',
    '256,512,1024',
    '--epochs',
    '3',
    '--batch-size',
    '32',
    '--seed',
    '42',
  ];
  const env = { ...cluster.env, IMGPIPE_NO_WEBGPU: '1' };
  const params = {
    images: counts.train + counts.val,
    trials: 9,
    shards: Number(values.shards),
    backbone: 'resnet50 (random weights) onnx',
    device: values.device,
  };

  let started = performance.now();
  const single = await execa(
    process.execPath,
    [TRAIN, '--data', dataDir, '--out', join(temp.path, 'single'), '--cache-dir', join(temp.path, 'cache-single'), ...sweep],
    { env },
  );
  const singleSeconds = (performance.now() - started) / 1000;
  const singleRun = JSON.parse(await readFile(join(JSON.parse(single.stdout).path, 'run.json'), 'utf8'));
  results.push({ name: 'one process: wall seconds', unit: 's', value: singleSeconds, params });
  results.push({ name: 'one process: extraction seconds', unit: 's', value: singleRun.timings.feature_extraction_seconds, params });
  results.push({ name: 'one process: head training seconds (9 trials)', unit: 's', value: singleRun.timings.head_training_seconds, params });

  started = performance.now();
  const submittedAt = Date.now();
  const submit = await execa(
    join(ROOT, 'deploy/slurm/submit-sweep.sh'),
    [
      '--data',
      dataDir,
      '--out',
      join(temp.path, 'runs'),
      '--run-id',
      'bench',
      '--shards',
      values.shards!,
      '--cache-dir',
      join(temp.path, 'cache-slurm'),
      ...sweep,
    ],
    { env },
  );
  const submitted = JSON.parse(submit.stdout) as { path: string; jobs: Record<string, string> };
  const planSeconds = (performance.now() - started) / 1000;
  await cluster.waitIdle(1_800_000);
  const run = JSON.parse(await readFile(join(submitted.path, 'run.json'), 'utf8'));
  if (run.status !== 'done') throw new Error(`the Slurm run ended ${run.status}:\n${await cluster.logs()}`);
  // Slurm's own record of each task: start and end, to the second (slurmctld's local time; this machine runs on UTC).
  const tasks = async (job: string) => {
    const text = await cluster.command('scontrol', ['show', 'job', '-o', job]);
    return [...text.matchAll(/StartTime=(\S+) EndTime=(\S+)/g)].map((m) => ({ start: Date.parse(`${m[1]}Z`), end: Date.parse(`${m[2]}Z`) }));
  };
  const extract = await tasks(submitted.jobs.extract!);
  const trials = await tasks(submitted.jobs.trials!);
  const finish = await tasks(submitted.jobs.finish!);
  const span = (list: { start: number; end: number }[]) => (Math.max(...list.map((t) => t.end)) - Math.min(...list.map((t) => t.start))) / 1000;
  const busy = (list: { start: number; end: number }[]) => list.reduce((s, t) => s + (t.end - t.start) / 1000, 0);
  results.push({ name: 'slurm: plan seconds (on the submit host)', unit: 's', value: planSeconds, params });
  results.push({
    name: 'slurm: wall seconds, submit to finish done',
    unit: 's',
    value: (finish[0]!.end - submittedAt) / 1000,
    params: { ...params, note: 'second resolution' },
  });
  results.push({ name: 'slurm: extraction phase seconds (first start to last end)', unit: 's', value: span(extract), params });
  results.push({ name: 'slurm: extraction task-seconds (sum)', unit: 's', value: busy(extract), params });
  results.push({ name: 'slurm: extraction seconds inside the tasks (sum)', unit: 's', value: run.timings.feature_extraction_seconds, params });
  results.push({ name: 'slurm: trials phase seconds (first start to last end)', unit: 's', value: span(trials), params });
  results.push({ name: 'slurm: trial task-seconds (sum)', unit: 's', value: busy(trials), params });
  results.push({ name: 'slurm: training seconds inside the trial tasks (sum)', unit: 's', value: run.timings.head_training_seconds, params });
  results.push({
    name: 'slurm: overhead per trial task (task wall - training)',
    unit: 's',
    value: (busy(trials) - run.timings.head_training_seconds) / trials.length,
    params,
  });
  results.push({
    name: 'slurm: overhead per extraction task (task wall - extraction)',
    unit: 's',
    value: (busy(extract) - run.timings.feature_extraction_seconds) / extract.length,
    params,
  });
  results.push({
    name: 'slurm: gap extraction end -> first trial start',
    unit: 's',
    value: (Math.min(...trials.map((t) => t.start)) - Math.max(...extract.map((t) => t.end))) / 1000,
    params,
  });
  results.push({ name: 'slurm: finish task seconds', unit: 's', value: busy(finish), params });
} finally {
  await cluster.stop();
  await temp.remove();
}
await writeBenchResults('scale-out', results);
