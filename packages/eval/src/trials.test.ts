import assert from 'node:assert/strict';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { InputError, readStylesheet, silentLogger } from '@imgpipe/kit';
import { makeTempDir, type TempDir } from '@imgpipe/test-utils';
import { EVAL_FORMAT, type EvalResult } from './eval-result.js';
import { renderReport } from './report.js';
import { attachCardMetrics } from './run-files.js';
import { trialLabel } from './trials.js';
import { readTrials, updateResults } from '@imgpipe/kit';

let temp: TempDir;
before(async () => (temp = await makeTempDir('imgpipe-eval-trials-')));
after(() => temp.remove());

const epoch = (trial: string, n: number) =>
  JSON.stringify({ event: 'epoch', trial, epoch: n, train_loss: 1 / n, train_accuracy: 0.5, val_loss: 1.1 / n, val_accuracy: 0.5, seconds: 0.1 });
const trial = (id: string, extra: Record<string, unknown> = {}) =>
  JSON.stringify({
    event: 'trial',
    trial: id,
    index: Number(id.slice(1)) - 1,
    params: { lr: 0.01, layer_size: 8 },
    status: 'ok',
    train_loss: 0.5,
    train_accuracy: 0.7,
    val_loss: 0.6,
    val_accuracy: 0.65,
    history: [1, 2].map((n) => JSON.parse(epoch(id, n))),
    ...extra,
  });

test('readTrials keeps trial lines, the last record of a trial, and skips a cut last line', async () => {
  const dir = join(temp.path, 'run-a');
  await mkdir(dir);
  const failed = trial('t002', { status: 'failed', reason: 'loss is NaN', val_loss: null, val_accuracy: null, history: [] });
  await writeFile(
    join(dir, 'trials.jsonl'),
    [epoch('t001', 1), trial('t001', { val_accuracy: 0.1 }), failed, trial('t001'), '{"event":"trial","tri'].join('\n'),
  );
  const trials = await readTrials(dir);
  assert.deepEqual(
    trials.map((t) => [t.id, t.status, t.val_accuracy]),
    [
      ['t001', 'ok', 0.65],
      ['t002', 'failed', null],
    ],
  );
  assert.equal(trials[0]!.history.length, 2);
  assert.equal(trials[1]!.reason, 'loss is NaN');
  assert.equal(trialLabel(trials[0]!), 't001 lr=0.01 layer_size=8');
  assert.deepEqual(await readTrials(join(temp.path, 'no-such-run')), []);
  await writeFile(join(dir, 'trials.jsonl'), ['not json', trial('t001')].join('\n'));
  await assert.rejects(readTrials(dir), (e: unknown) => e instanceof InputError && /trials.jsonl: line 1 is not JSON/.test(e.message));
});

test('updateResults fills the trial row and adds missing columns; attachCardMetrics keeps the rest of the card', async () => {
  const dir = join(temp.path, 'run-b');
  await mkdir(dir);
  await writeFile(join(dir, 'results.csv'), 'model,val_accuracy,best\nt001,0.5,false\nt002,0.75,true\n');
  assert.equal(await updateResults(dir, 't002', { test_loss: 0.123456789012, test_accuracy: 0.8 }, silentLogger), 1);
  assert.equal(
    await readFile(join(dir, 'results.csv'), 'utf8'),
    'model,val_accuracy,best,test_loss,test_accuracy\nt001,0.5,false,,\nt002,0.75,true,0.12345679,0.8\n',
  );
  assert.equal(await updateResults(join(temp.path, 'none'), 't002', { test_loss: 1, test_accuracy: 1 }, silentLogger), 0);
  await writeFile(join(dir, 'card.json'), JSON.stringify({ format: 'x', metrics: { val_accuracy: 0.75 }, trial: 't002' }));
  await attachCardMetrics(dir, { test_accuracy: 0.8, test_loss: 0.1 });
  assert.deepEqual(JSON.parse(await readFile(join(dir, 'card.json'), 'utf8')), {
    format: 'x',
    metrics: { val_accuracy: 0.75, test_accuracy: 0.8, test_loss: 0.1 },
    trial: 't002',
  });
});

test('report.html escapes what it shows and marks a failed gate', async () => {
  const result: EvalResult = {
    format: EVAL_FORMAT,
    split: 'test',
    count: 2,
    labels: ['<cat>', 'dog'],
    test_loss: 0.5,
    test_accuracy: 0.5,
    roc_auc: 1,
    per_class: { '<cat>': { precision: 1, recall: 0.5, f1: 0.667, support: 2 }, dog: { precision: 0, recall: 0, f1: 0, support: 0 } },
    confusion_matrix: [
      [1, 1],
      [0, 0],
    ],
    worst: [
      { row: 1, index: 7, source: 'x/<script>alert(1)</script>.jpg', true: '<cat>', predicted: 'dog', probability: 0.9, true_probability: 0.1 },
    ],
    model: { path: 'model', sha256: 'a'.repeat(64), trial: 't001', backbone: 'resnet50', backbone_sha256: 'b'.repeat(64), augment: 'none' },
    dataset: { path: '../prep', manifest_sha256: 'c'.repeat(64), test_pixels_sha256: 'd'.repeat(64), test_rows_sha256: 'e'.repeat(64) },
    device: 'wasm',
    tta: 'none',
    gate: { min_accuracy: 0.9, passed: false },
    files: { predictions: 'predictions.csv', report: 'report.html', plots: { confusion_matrix: 'plots/confusion-matrix.png' } },
  };
  const html = renderReport(result, [], 'Evaluation of <run>', await readStylesheet());
  assert.ok(!html.includes('<script>') && !html.includes('<cat>') && !html.includes('<run>'));
  assert.ok(html.includes('&lt;script&gt;alert(1)&lt;/script&gt;'));
  assert.match(html, /<strong class="bad">failed<\/strong>: accuracy &ge; 0.9/);
  assert.ok(html.includes('src="plots/confusion-matrix.png"'));
  assert.ok(!html.includes('learning-curves.png'), 'only the plots that were written');
  assert.match(html, /No trials.jsonl in this run/);
  assert.ok(html.includes(`<style>\n${await readStylesheet()}</style>`), 'the shared stylesheet, inlined');
  assert.ok(!/(src|href)="(\/|[a-z]+:)/.test(html), 'no absolute URLs: the report opens from a file, S3 or serve');
});

test('without trials.jsonl, the trial table comes from trials.csv (no history)', async () => {
  const dir = join(temp.path, 'run-c');
  await mkdir(dir);
  await writeFile(
    join(dir, 'trials.csv'),
    'trial,status,lr,layer_size,dropout,batch_size,epochs,val_loss,val_accuracy,reason\nt002,failed,0.5,8,0,16,3,,,loss is NaN\nt001,ok,0.01,8,0,16,3,0.61,0.7,\n',
  );
  const trials = await readTrials(dir);
  assert.deepEqual(
    trials.map((t) => [t.id, t.status, t.val_accuracy, t.history.length]),
    [
      ['t001', 'ok', 0.7, 0],
      ['t002', 'failed', null, 0],
    ],
  );
  assert.deepEqual(trials[0]!.params, { lr: 0.01, layer_size: 8, dropout: 0, batch_size: 16, epochs: 3 });
  assert.equal(trials[1]!.reason, 'loss is NaN');
});
