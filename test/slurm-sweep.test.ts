// The sweep on a real single-node Slurm (Debian's slurm-wlm and munge, started by the test on loopback, as root),
// submitted through the shipped deploy/slurm scripts: it must end with the same trials.csv rows and the same best
// head as one `train` process. One trial task is cancelled, the rest of the chain is cancelled by Slurm, and the
// documented resubmit command finishes the run with the same result. Needs the built bins (`npx tsc -b`).
import assert from 'node:assert/strict';
import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, test } from 'node:test';
import { makeTempDir, startSlurmCluster, type SlurmCluster, type TempDir } from '@imgpipe/test-utils';
import { execa } from 'execa';
import { tinyBackbone, writeLearnableDataset } from '@imgpipe/test-utils';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const TRAIN = join(ROOT, 'packages/train/bin/train.js');
const SUBMIT = join(ROOT, 'deploy/slurm/submit-sweep.sh');
const RESUBMIT = join(ROOT, 'deploy/slurm/resubmit.sh');
let temp: TempDir;
let cluster: SlurmCluster | undefined;

before(
  async () => {
    temp = await makeTempDir('imgpipe-slurm-sweep-');
    cluster = await startSlurmCluster({ cpus: 2 });
  },
  { timeout: 60_000 },
);
after(async () => {
  await cluster?.stop();
  await temp.remove();
});

async function trialsWithoutTimes(runDir: string): Promise<string[][]> {
  const lines = (await readFile(join(runDir, 'trials.csv'), 'utf8'))
    .trim()
    .split('\n')
    .map((l) => l.split(','));
  const col = lines[0]!.indexOf('seconds');
  return lines.map((cells) => cells.filter((_, i) => i !== col));
}

interface Submitted {
  kind: string;
  path: string;
  jobs: { extract: string; trials: string; finish: string; eval: string };
}

test('a sweep submitted as Slurm job arrays equals one process; a cancelled trial resubmitted alone gives the same result', {
  timeout: 420_000,
}, async () => {
  const slurm = cluster!;
  const data = await writeLearnableDataset(join(temp.path, 'data'));
  const tiny = await tinyBackbone(join(temp.path, 'backbone'));
  const sweep = [
    '--backbone',
    tiny.backbone,
    '--feature-layer',
    tiny.featureLayer,
    '--preprocess',
    tiny.preprocess,
    '--cache-dir',
    join(temp.path, 'cache'),
    '--device',
    'wasm',
    '--lr',
    '0.001,0.01,0.05',
    '--layer-size',
    '4,16',
    '--epochs',
    '3',
    '--batch-size',
    '16',
    '--seed',
    '3',
  ];
  const env = { ...slurm.env, IMGPIPE_NO_WEBGPU: '1' };
  const single = await execa(process.execPath, [TRAIN, '--data', data, '--out', join(temp.path, 'single'), ...sweep], { env, reject: false });
  assert.equal(single.exitCode, 0, single.stderr);
  const singleRun = JSON.parse(single.stdout).path as string;

  const started = performance.now();
  const submit = await execa(SUBMIT, ['--data', data, '--out', join(temp.path, 'runs'), '--run-id', 'sweep', '--shards', '3', ...sweep], {
    env,
    reject: false,
  });
  assert.equal(submit.exitCode, 0, submit.stderr);
  const submitted = JSON.parse(submit.stdout) as Submitted;
  const runDir = submitted.path;
  assert.equal(runDir, join(temp.path, 'runs', 'sweep'));
  // The trials wait for the extraction array, so trial 2 is still pending: cancel it, as a lost node would.
  await slurm.command('scancel', [`${submitted.jobs.trials}_2`]);
  await slurm.waitIdle(240_000);

  assert.deepEqual(await slurm.jobStates(submitted.jobs.extract), ['COMPLETED', 'COMPLETED', 'COMPLETED']);
  // One record per element that ran (the cancelled one never started, and Slurm keeps no record of it).
  assert.deepEqual(await slurm.jobStates(submitted.jobs.trials), Array(5).fill('COMPLETED'));
  assert.deepEqual(await slurm.jobStates(submitted.jobs.finish), ['CANCELLED'], 'finish never runs after a failed trial');
  assert.deepEqual(await slurm.jobStates(submitted.jobs.eval), ['CANCELLED']);
  await assert.rejects(stat(join(runDir, 'model')), 'no model without every trial');
  const trialFiles = (await readdir(join(runDir, 'trials'))).filter((f) => f.endsWith('.json')).sort();
  assert.deepEqual(trialFiles, ['t001.json', 't002.json', 't004.json', 't005.json', 't006.json']);
  const before = await stat(join(runDir, 'trials', 't001.json'));

  const resubmit = await execa(RESUBMIT, [runDir, 'trial', '2'], { env, reject: false });
  assert.equal(resubmit.exitCode, 0, resubmit.stderr);
  const again = JSON.parse(resubmit.stdout) as Submitted;
  await slurm.waitIdle(240_000);
  const seconds = (performance.now() - started) / 1000;
  assert.deepEqual(await slurm.jobStates(again.jobs.trials), ['COMPLETED']);
  assert.deepEqual(
    await slurm.jobStates(again.jobs.finish),
    ['COMPLETED'],
    await readFile(join(runDir, 'slurm/logs/finish.log'), 'utf8').catch(() => ''),
  );
  assert.deepEqual(
    await slurm.jobStates(again.jobs.eval),
    ['COMPLETED'],
    await readFile(join(runDir, 'slurm/logs/eval.log'), 'utf8').catch(() => ''),
  );
  assert.equal((await stat(join(runDir, 'trials', 't001.json'))).mtimeMs, before.mtimeMs, 'the other trials were not rerun');

  assert.deepEqual(await trialsWithoutTimes(runDir), await trialsWithoutTimes(singleRun));
  const head = (dir: string) => readFile(join(dir, 'model', 'head', 'weights.bin'));
  assert.deepEqual(await head(runDir), await head(singleRun), 'the same best head weights');
  const finishLog = await readFile(join(runDir, 'slurm/logs/finish.log'), 'utf8');
  assert.match(
    finishLog,
    new RegExp(`\\{"kind":"run","path":"${runDir}","best":"${join(runDir, 'model')}"\\}`),
    'finish prints the pointer a plain train prints',
  );
  const evalJson = JSON.parse(await readFile(join(runDir, 'eval.json'), 'utf8'));
  assert.ok(evalJson.test_accuracy ?? evalJson.metrics?.accuracy ?? evalJson.accuracy, 'eval-model ran on the finished run');
  const logs = (await readdir(join(runDir, 'slurm/logs'))).sort();
  assert.deepEqual(logs, [
    'eval.log',
    'extract-0.log',
    'extract-1.log',
    'extract-2.log',
    'finish.log',
    'trial-0.log',
    'trial-1.log',
    'trial-2.log',
    'trial-3.log',
    'trial-4.log',
    'trial-5.log',
  ]);
  assert.ok(seconds < 240, `the Slurm sweep took ${seconds.toFixed(0)} s`);
});
