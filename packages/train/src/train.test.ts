import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { after, before, test } from 'node:test';
import { FailureError, openDataset, readModelCard, UsageError } from '@imgpipe/kit';
import { loadModel, loadTf } from '@imgpipe/engines';
import { makeTempDir, type TempDir } from '@imgpipe/test-utils';
import { runTrain } from './train.js';
import type { TrainOptions } from './train-options.js';
import type { TrialHooks } from './trial-hooks.js';
import { tinyBackbone, writeLearnableDataset } from '@imgpipe/test-utils';

let temp: TempDir;
let base: Omit<TrainOptions, 'out'>;
let runs = 0;

before(async () => {
  temp = await makeTempDir('imgpipe-train-');
  const dataDir = await writeLearnableDataset(join(temp.path, 'data'));
  base = {
    dataDir,
    ...(await tinyBackbone(join(temp.path, 'backbone'))),
    cacheDir: join(temp.path, 'cache'),
    space: { lr: [0.001, 0.01, 0.05], layer_size: [4, 16, 32], dropout: [0.5], batch_size: [16], epochs: [2] },
    strategy: 'grid',
    runs: 0,
    seed: 42,
    device: 'wasm',
    extractBatchSize: 32,
  };
});
after(() => temp.remove());

const train = (overrides: Partial<TrainOptions> = {}, hooks: TrialHooks = {}) =>
  runTrain({ ...base, out: join(temp.path, `runs-${runs++}`), ...overrides }, hooks);

/** trials.csv without the seconds column (wall time differs between runs). */
async function trialsWithoutTimes(runDir: string): Promise<string[][]> {
  const lines = (await readFile(join(runDir, 'trials.csv'), 'utf8'))
    .trim()
    .split('\n')
    .map((l) => l.split(','));
  const col = lines[0]!.indexOf('seconds');
  assert.ok(col > 0);
  return lines.map((cells) => cells.filter((_, i) => i !== col));
}

test('a 3x3 grid runs 9 trials, keeps the best on validation, and its saved model reproduces that accuracy', async () => {
  const { tf } = await loadTf('wasm');
  const tensors = tf.memory().numTensors;
  const result = await train();
  assert.equal(tf.memory().numTensors, tensors, 'no tensors left after the sweep');
  assert.equal(result.records.length, 9);
  assert.equal(new Set(result.records.map((r) => `${r.params.lr}/${r.params.layer_size}`)).size, 9);
  assert.ok(result.records.every((r) => r.status === 'ok' && r.history.length === 2));
  for (const r of result.records) {
    assert.ok(
      r.val_accuracy < result.best.val_accuracy || (r.val_accuracy === result.best.val_accuracy && r.val_loss >= result.best.val_loss),
      `${r.trial} beats the pick`,
    );
  }
  assert.ok(result.best.val_accuracy > 0.6, `best val accuracy ${result.best.val_accuracy}`);
  assert.deepEqual(result.pointer, { kind: 'run', path: result.runDir, best: join(result.runDir, 'model') });

  const files = (await readdir(result.runDir)).sort();
  assert.deepEqual(files, ['model', 'results.csv', 'run.json', 'trials.csv', 'trials.jsonl']);
  const run = JSON.parse(await readFile(join(result.runDir, 'run.json'), 'utf8'));
  assert.equal(run.status, 'done');
  assert.equal(run.best.trial, result.best.trial);
  assert.ok(run.timings.feature_extraction_seconds > 0 && run.timings.head_training_seconds > 0);
  const jsonl = (await readFile(join(result.runDir, 'trials.jsonl'), 'utf8'))
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l));
  assert.equal(jsonl.filter((l) => l.event === 'epoch').length, 18);
  assert.equal(jsonl.filter((l) => l.event === 'trial').length, 9);
  const results = (await readFile(join(result.runDir, 'results.csv'), 'utf8')).trim().split('\n');
  assert.equal(results.length, 10);
  assert.match(
    results[0]!,
    /^model,backbone,lr,layer_size,dropout,batch_size,epochs,train_loss,train_accuracy,val_loss,val_accuracy,test_loss,test_accuracy,best,status$/,
  );
  assert.equal(results.filter((l) => l.includes(',true,')).length, 1);

  const card = await readModelCard(result.modelDir);
  assert.deepEqual(card.labels, ['cat', 'dog']);
  assert.equal(card.metrics.val_accuracy, result.best.val_accuracy);
  assert.equal(card.head.layer_size, result.best.params.layer_size);
  assert.equal(card.dataset.manifest_sha256, run.dataset.manifest_sha256);

  const dataset = await openDataset(base.dataDir);
  const count = dataset.manifest.splits.val.count;
  const model = await loadModel(result.modelDir, { device: 'wasm' });
  const probs = await model.predict(await dataset.readPixels('val', 0, count), count);
  const labels = await dataset.labels('val');
  let correct = 0;
  for (let i = 0; i < count; i++) if ((probs[2 * i + 1]! > probs[2 * i]! ? 1 : 0) === labels[i]) correct++;
  await model.dispose();
  assert.equal(correct / count, result.best.val_accuracy, 'the reloaded model gives the logged val accuracy');

  const again = await train();
  assert.deepEqual(await trialsWithoutTimes(again.runDir), await trialsWithoutTimes(result.runDir), 'same seed, same trials.csv');
  const other = await train({ seed: 7 });
  assert.notDeepEqual(await trialsWithoutTimes(other.runDir), await trialsWithoutTimes(result.runDir), 'another seed, other metrics');
});

test('random search with a budget runs that many distinct combinations from the space', async () => {
  const result = await train({ strategy: 'random', runs: 4, space: { ...base.space, dropout: [0, 0.5] } });
  assert.equal(result.records.length, 4);
  const keys = result.records.map((r) => JSON.stringify(r.params));
  assert.equal(new Set(keys).size, 4);
  for (const r of result.records) {
    assert.ok(base.space.lr.includes(r.params.lr) && base.space.layer_size.includes(r.params.layer_size) && [0, 0.5].includes(r.params.dropout));
  }
  const again = await train({ strategy: 'random', runs: 4, space: { ...base.space, dropout: [0, 0.5] } });
  assert.deepEqual(
    again.records.map((r) => JSON.stringify(r.params)),
    keys,
    'same seed, same draw',
  );
});

test('a failing trial (crash or NaN loss) is recorded with its reason and the others finish', async () => {
  const result = await train({ space: { ...base.space, lr: [0.01, 1e38], layer_size: [8] } });
  const [fine, nan] = result.records;
  assert.equal(fine!.status, 'ok');
  // lr 1e38 makes the weights overflow: the loss becomes NaN or infinite, a real failure.
  assert.equal(nan!.status, 'failed');
  assert.match(nan!.reason!, /loss is (NaN|Infinity)/);
  assert.equal(result.best.trial, 't001');
  // No trial succeeded: exit 1 and run.json says failed.
  await assert.rejects(
    train({ space: { ...base.space, lr: [1e38], layer_size: [8] } }),
    (e: Error) => e instanceof FailureError && /all 1 trials failed/.test(e.message),
  );

  const mixed = await train({ space: { ...base.space, lr: [0.01], layer_size: [4, 8, 16] } }, { failTrials: new Set(['t002']) });
  assert.deepEqual(
    mixed.records.map((r) => r.status),
    ['ok', 'failed', 'ok'],
  );
  assert.notEqual(mixed.best.trial, 't002');
  const csv = await readFile(join(mixed.runDir, 'trials.csv'), 'utf8');
  assert.match(csv, /t002,failed,.*injected failure/);

  const out = join(temp.path, 'runs-limited');
  await assert.rejects(
    runTrain(
      { ...base, out, space: { ...base.space, lr: [0.01], layer_size: [4, 8, 16] }, maxFailedTrials: 1 },
      { failTrials: new Set(['t001', 't002']) },
    ),
    (e: Error) => e instanceof FailureError && /more than --max-failed-trials 1/.test(e.message),
  );
  const [runDir] = await readdir(out);
  const run = JSON.parse(await readFile(join(out, runDir!, 'run.json'), 'utf8'));
  assert.equal(run.status, 'failed');
  const jsonl = (await readFile(join(out, runDir!, 'trials.jsonl'), 'utf8')).trim().split('\n');
  assert.equal(jsonl.filter((l) => l.includes('"event":"trial"')).length, 2, 'the third trial never started');
});

test('--resume finishes a stopped run; with other settings, and --fine-tune of an ONNX backbone, it is a usage error', async () => {
  const out = join(temp.path, 'runs-resume');
  const space = { ...base.space, lr: [0.01], layer_size: [4, 8, 16] };
  await assert.rejects(runTrain({ ...base, out, space, maxFailedTrials: 0 }, { failTrials: new Set(['t001', 't002']) }), FailureError);
  const [runDir] = await readdir(out);
  // The sweep stopped after t001 failed; a failed trial is a finished one, so --resume keeps it and runs t002, t003.
  const resumed = await runTrain({ ...base, out, space, resume: join(out, runDir!) });
  assert.equal(resumed.runDir, join(out, runDir!));
  assert.deepEqual(
    resumed.records.map((r) => r.status),
    ['failed', 'ok', 'ok'],
  );
  const jsonl = (await readFile(join(resumed.runDir, 'trials.jsonl'), 'utf8'))
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l));
  assert.deepEqual(
    jsonl.filter((l) => l.event === 'trial').map((l) => l.trial),
    ['t001', 't002', 't003'],
  );

  await assert.rejects(
    runTrain({ ...base, out, space, seed: 1, resume: resumed.runDir }),
    (e: Error) => e instanceof UsageError && /other inputs: --seed \(42 -> 1\)/.test(e.message),
  );
  // An ONNX backbone cannot be fine-tuned: a usage error before the sweep starts (no trial runs).
  const onnxOut = join(temp.path, 'runs-fine-tune-onnx');
  await assert.rejects(
    runTrain({ ...base, out: onnxOut, fineTune: { mode: 'all', epochs: 1 } }),
    (e: Error) => e instanceof UsageError && /--fine-tune needs a TF\.js layers backbone.*ONNX/.test(e.message),
  );
  assert.deepEqual(await readdir(onnxOut).catch(() => []), []);
});

test('a run directory left by a train killed before its first run.json is removed by the next train in that --out', async () => {
  const out = join(temp.path, 'runs-abandoned');
  const deadPid = spawnSync(process.execPath, ['-e', '0']).pid;
  const abandoned = join(out, '20261207-0320-15a7');
  await mkdir(abandoned, { recursive: true });
  await writeFile(join(abandoned, `.run.json.${deadPid}.8598ec31.tmp`), '{"format":');
  // A directory another live train is filling (its temp's pid is alive) is left alone.
  const live = join(out, '20261207-0320-beef');
  await mkdir(live);
  await writeFile(join(live, `.run.json.${process.pid}.0badcafe.tmp`), '{');
  const { runDir } = await runTrain({ ...base, out, space: { ...base.space, lr: [0.01], layer_size: [4] } });
  assert.deepEqual((await readdir(out)).filter((name) => !name.startsWith('.')).sort(), [basename(live), basename(runDir)].sort());
});

test('--patience stops a trial once val loss stops falling and keeps (and saves) its best epoch', async () => {
  const result = await train({ space: { ...base.space, lr: [0.05, 0.2], layer_size: [16], epochs: [12] }, patience: 1 });
  const stopped = result.records.filter((r) => r.epochs_run < 12);
  assert.ok(stopped.length > 0, 'some trial stopped early');
  assert.ok(result.best.best_epoch < result.best.epochs_run, 'the kept trial went back to an earlier epoch, so the saved weights are restored ones');
  for (const r of result.records) {
    const losses = r.history.map((h) => h.val_loss);
    assert.equal(r.val_loss, Math.min(...losses), `${r.trial} keeps its lowest val loss`);
    assert.equal(r.history[r.best_epoch - 1]!.val_accuracy, r.val_accuracy);
    if (r.epochs_run < 12) assert.ok(losses.at(-1)! >= losses.at(-2)!, `${r.trial} stopped after a rise`);
  }
  const dataset = await openDataset(base.dataDir);
  const count = dataset.manifest.splits.val.count;
  const model = await loadModel(result.modelDir, { device: 'wasm' });
  const probs = await model.predict(await dataset.readPixels('val', 0, count), count);
  await model.dispose();
  const labels = await dataset.labels('val');
  let loss = 0;
  for (let i = 0; i < count; i++) loss -= Math.log(probs[2 * i + labels[i]!]!);
  assert.ok(Math.abs(loss / count - result.best.val_loss) < 1e-4, `saved model's val loss ${loss / count} vs logged ${result.best.val_loss}`);
});
