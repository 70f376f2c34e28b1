import assert from 'node:assert/strict';
import { cp, readFile, stat, truncate, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { FailureError, silentLogger, UsageError, walkDir } from '@imgpipe/kit';
import { buildTinyConvBackbone, makeTempDir, type TempDir } from '@imgpipe/test-utils';
import { extractShard } from './task-extract.js';
import { finishTask as finishRun } from './task-finish.js';
import { planRun, planShards, readPlan } from './task-plan.js';
import { runTrialTask, trialFile } from './task-trial.js';
import { TEST_SIZE, tinyBackbone, writeLearnableDataset } from '@imgpipe/test-utils';
import { runTrain } from '../train.js';
import type { TrainOptions } from '../train-options.js';

let temp: TempDir;
let base: TrainOptions;

before(async () => {
  temp = await makeTempDir('imgpipe-train-tasks-');
  const dataDir = await writeLearnableDataset(join(temp.path, 'data'));
  base = {
    dataDir,
    out: join(temp.path, 'runs'),
    ...(await tinyBackbone(join(temp.path, 'backbone'))),
    cacheDir: join(temp.path, 'cache'),
    space: { lr: [0.001, 0.01, 0.05], layer_size: [4, 16], dropout: [0.5], batch_size: [16], epochs: [2] },
    strategy: 'grid',
    runs: 0,
    seed: 42,
    device: 'wasm',
    extractBatchSize: 16,
  };
});
after(() => temp.remove());

async function trialsWithoutTimes(runDir: string): Promise<string[][]> {
  const lines = (await readFile(join(runDir, 'trials.csv'), 'utf8'))
    .trim()
    .split('\n')
    .map((l) => l.split(','));
  const col = lines[0]!.indexOf('seconds');
  assert.ok(col > 0);
  return lines.map((cells) => cells.filter((_, i) => i !== col));
}

test('planShards cuts the train then val batches into exactly N contiguous shards of whole batches', () => {
  const shards = planShards({ train: 80, val: 40 }, 16, 4);
  assert.equal(shards.length, 4);
  const flat = shards.flat();
  for (const split of ['train', 'val'] as const) {
    const parts = flat.filter((p) => p.split === split);
    assert.equal(
      parts.reduce((n, p) => n + p.count, 0),
      split === 'train' ? 80 : 40,
    );
    for (const [i, p] of parts.entries()) {
      assert.equal(p.start % 16, 0);
      if (i > 0) assert.equal(p.start, parts[i - 1]!.start + parts[i - 1]!.count, 'contiguous');
    }
  }
  assert.deepEqual(planShards({ train: 10, val: 5 }, 16, 3), [[], [{ split: 'train', start: 0, count: 10 }], [{ split: 'val', start: 0, count: 5 }]]);
});

test('the sweep as tasks (plan, extract shards, trials, finish) gives the same trials.csv rows and best head as one process', async () => {
  const single = await runTrain({ ...base, out: join(temp.path, 'single') });

  const planned = await planRun({ ...base, shards: 3, runId: 'tasks' }, silentLogger);
  const runDir = planned.runDir;
  assert.equal(planned.planned, true);
  const again = await planRun({ ...base, shards: 3, runId: 'tasks' }, silentLogger);
  assert.equal(again.planned, false, 'planning the same command again does nothing');
  await assert.rejects(planRun({ ...base, seed: 1, shards: 3, runId: 'tasks' }, silentLogger), UsageError);

  const plan = await readPlan(runDir);
  assert.equal(plan.trials.length, 6);
  await assert.rejects(runTrialTask(runDir, plan, 0, silentLogger), FailureError, 'a trial before its features is an error');
  await assert.rejects(extractShard(runDir, plan, 3, silentLogger), UsageError);
  // Shards in any order, as a scheduler may start them.
  for (const k of [2, 0, 1]) assert.ok((await extractShard(runDir, plan, k, silentLogger)).images > 0);
  assert.equal((await extractShard(runDir, plan, 1, silentLogger)).images, 0, 'a finished shard is not extracted again');

  await assert.rejects(finishRun(runDir, plan, silentLogger), FailureError, 'finish before the trials is an error');
  for (const k of [5, 3, 1, 0, 2, 4]) await runTrialTask(runDir, plan, k, silentLogger);
  const written = await stat(trialFile(runDir, plan.trials[2]!));
  await runTrialTask(runDir, plan, 2, silentLogger);
  assert.equal((await stat(trialFile(runDir, plan.trials[2]!))).mtimeMs, written.mtimeMs, 'a finished trial is not rerun');

  const pointer = await finishRun(runDir, plan, silentLogger);
  assert.deepEqual(pointer, { kind: 'run', path: runDir, best: join(runDir, 'model') });
  assert.deepEqual(await trialsWithoutTimes(runDir), await trialsWithoutTimes(single.runDir));
  const headBytes = (dir: string) => readFile(join(dir, 'model', 'head', 'weights.bin'));
  assert.deepEqual(await headBytes(runDir), await headBytes(single.runDir), 'the same head weights');
  const card = JSON.parse(await readFile(join(runDir, 'model', 'card.json'), 'utf8'));
  assert.equal(card.trial, single.best.trial);
  const run = JSON.parse(await readFile(join(runDir, 'run.json'), 'utf8'));
  assert.equal(run.status, 'done');
  assert.equal(run.best.trial, single.best.trial);
  const jsonl = (await readFile(join(runDir, 'trials.jsonl'), 'utf8'))
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l));
  assert.equal(jsonl.filter((l) => l.event === 'trial').length, 6);
  assert.equal(jsonl.filter((l) => l.event === 'epoch').length, 12);

  const modelWritten = await stat(join(runDir, 'model', 'card.json'));
  assert.deepEqual(await finishRun(runDir, plan, silentLogger), pointer);
  assert.equal((await stat(join(runDir, 'model', 'card.json'))).mtimeMs, modelWritten.mtimeMs, 'a finished run is not finished again');
  const leftovers = (await walkDir(runDir)).filter((e) => e.path.endsWith('.tmp'));
  assert.deepEqual(leftovers, [], 'no temp files left');
});

test('the bin: task usage errors exit 2 naming the flag; a rerun task says it has nothing to do', async () => {
  const bin = fileURLToPath(new URL('../../bin/train.js', import.meta.url));
  const train = (args: string[]) => execa(process.execPath, [bin, ...args], { env: { IMGPIPE_NO_WEBGPU: '1' }, reject: false });
  const { runDir } = await planRun({ ...base, out: join(temp.path, 'bin'), shards: 2, runId: 'r' }, silentLogger);
  const cases: [string[], RegExp][] = [
    [['--task', 'trial'], /--task trial needs --run DIR/],
    [['--task', 'extract', '--run', runDir], /--task extract needs --index K/],
    [['--task', 'extract', '--run', runDir, '--index', '2'], /expected --index to be one of the plan's 2 extraction shards, 0\.\.1, got 2/],
    [['--task', 'trial', '--run', temp.path, '--index', '0'], /no plan\.json there/],
    [['--task', 'plan', '--data', base.dataDir, '--run', runDir], /--run and --index go with the other tasks/],
    [['--task', 'nonsense'], /Invalid values/],
  ];
  for (const [args, message] of cases) {
    const result = await train(args);
    assert.equal(result.exitCode, 2, `${args.join(' ')}: ${result.stderr}`);
    assert.match(result.stderr, message);
  }
  const plan = await train([
    '--task',
    'plan',
    '--data',
    base.dataDir,
    '--out',
    join(temp.path, 'bin'),
    '--run-id',
    'r',
    '--shards',
    '2',
    '--backbone',
    base.backbone,
    '--feature-layer',
    base.featureLayer!,
    '--preprocess',
    base.preprocess!,
    '--cache-dir',
    base.cacheDir!,
    '--device',
    'wasm',
    '--lr',
    '0.001,0.01,0.05',
    '--layer-size',
    '4,16',
    '--dropout',
    '0.5',
    '--batch-size',
    '16',
    '--epochs',
    '2',
    '--seed',
    '42',
  ]);
  assert.equal(plan.exitCode, 0, plan.stderr);
  assert.deepEqual(JSON.parse(plan.stdout), { kind: 'run', path: runDir, plan: join(runDir, 'plan.json'), shards: 2, trials: 6 });
  assert.match(plan.stderr, /already planned/);
  const first = await train(['--task', 'extract', '--run', runDir, '--index', '1']);
  assert.equal(first.exitCode, 0, first.stderr);
  const again = await train(['--task', 'extract', '--run', runDir, '--index', '1']);
  assert.match(again.stderr, /extraction shard 1: already done; nothing to do/);
});

test("every task re-checks the plan's inputs: a replaced backbone, a rebuilt dataset, a damaged shard file or a cut plan.json exit 2 naming it", async () => {
  const bin = fileURLToPath(new URL('../../bin/train.js', import.meta.url));
  const train = (args: string[]) => execa(process.execPath, [bin, ...args], { env: { IMGPIPE_NO_WEBGPU: '1' }, reject: false });
  const noStack = (stderr: string) => assert.doesNotMatch(stderr, /^\s+at /m, 'no stack trace');
  // A run of its own per case: its own copies of the dataset and backbone, planned with 2 shards, shard 0 extracted.
  const planned = async (name: string) => {
    const dataDir = join(temp.path, `inputs-${name}`, 'data');
    await cp(base.dataDir, dataDir, { recursive: true });
    const backbone = await buildTinyConvBackbone({
      dir: join(temp.path, `inputs-${name}`, 'backbone'),
      inputSize: TEST_SIZE,
      format: 'onnx',
      seed: 1,
    });
    const { runDir } = await planRun(
      { ...base, dataDir, backbone: backbone.path, out: join(temp.path, 'inputs-runs'), shards: 2, runId: name },
      silentLogger,
    );
    const first = await train(['--task', 'extract', '--run', runDir, '--index', '0']);
    assert.equal(first.exitCode, 0, first.stderr);
    return { runDir, dataDir, backbone };
  };

  const swapped = await planned('backbone');
  await buildTinyConvBackbone({ dir: dirname(swapped.backbone.path), inputSize: TEST_SIZE, format: 'onnx', seed: 9 });
  for (const args of [
    ['--task', 'extract', '--index', '1'],
    ['--task', 'trial', '--index', '0'],
    ['--task', 'finish'],
  ]) {
    const result = await train([...args, '--run', swapped.runDir]);
    assert.equal(result.exitCode, 2, `${args.join(' ')}: ${result.stderr}`);
    assert.match(result.stderr, new RegExp(`plan\\.json: the backbone ${swapped.backbone.path} changed since the run was planned`));
    noStack(result.stderr);
  }

  const rebuilt = await planned('dataset');
  await writeLearnableDataset(rebuilt.dataDir, { train: 64, val: 40, test: 20 }, 6); // shrunk, as another prep-data would
  const shrunk = await train(['--task', 'extract', '--run', rebuilt.runDir, '--index', '1']);
  assert.equal(shrunk.exitCode, 2, shrunk.stderr);
  assert.match(shrunk.stderr, new RegExp(`the dataset ${rebuilt.dataDir} changed since the run was planned \\(manifest\\.json sha256`));
  noStack(shrunk.stderr);

  const damaged = await planned('damaged');
  assert.equal((await train(['--task', 'extract', '--run', damaged.runDir, '--index', '1'])).exitCode, 0);
  const plan = await readPlan(damaged.runDir);
  const part = plan.shards[0]![0]!;
  const file = join(damaged.runDir, 'features', `${part.split}-${String(part.start).padStart(9, '0')}.f32`);
  await writeFile(file, new Uint8Array(new Float32Array(part.count * plan.feature_dim).fill(Number.NaN).buffer));
  const trial = await train(['--task', 'trial', '--run', damaged.runDir, '--index', '0']);
  assert.equal(trial.exitCode, 2, trial.stderr);
  assert.match(
    trial.stderr,
    new RegExp(`${file}: its checksum does not match \\(damaged\\); rerun train --task extract --run ${damaged.runDir} --index 0`),
  );
  noStack(trial.stderr);
  const again = await train(['--task', 'extract', '--run', damaged.runDir, '--index', '0']);
  assert.equal(again.exitCode, 0, again.stderr);
  assert.match(again.stderr, /its checksum does not match \(damaged\); extracting it again/);
  const retried = await train(['--task', 'trial', '--run', damaged.runDir, '--index', '0']);
  assert.equal(retried.exitCode, 0, retried.stderr);

  const planFile = join(damaged.runDir, 'plan.json');
  await truncate(planFile, (await stat(planFile)).size >> 1);
  const cut = await train(['--task', 'trial', '--run', damaged.runDir, '--index', '1']);
  assert.equal(cut.exitCode, 2, cut.stderr);
  assert.match(cut.stderr, new RegExp(`${planFile}: not valid JSON`));
  noStack(cut.stderr);
});
