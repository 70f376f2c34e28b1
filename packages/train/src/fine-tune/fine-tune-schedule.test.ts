import assert from 'node:assert/strict';
import { test } from 'node:test';
import { BestEpoch, scheduledLr, warmupSteps } from './fine-tune-schedule.js';

test('the learning rate warms up linearly to lr, then decays along a cosine towards 0', () => {
  const total = 50;
  const lrs = Array.from({ length: total }, (_, step) => scheduledLr(0.01, step, total));
  const warmup = warmupSteps(total);
  assert.equal(warmup, 5);
  assert.ok(Math.abs(lrs[0]! - 0.002) < 1e-12, `first step ${lrs[0]}`);
  for (let i = 1; i < warmup; i++) assert.ok(lrs[i]! > lrs[i - 1]!, `warm-up rises at ${i}`);
  assert.equal(lrs[warmup - 1], 0.01);
  assert.equal(lrs[warmup], 0.01, 'the decay starts at lr');
  for (let i = warmup + 1; i < total; i++) assert.ok(lrs[i]! < lrs[i - 1]!, `decay falls at ${i}`);
  assert.ok(lrs.at(-1)! < 0.0002, `last step ${lrs.at(-1)}`);
  assert.ok(Math.abs(scheduledLr(0.01, warmup + (total - warmup) / 2, total) - 0.005) < 1e-12, 'half-way through the decay: lr / 2');
  assert.equal(scheduledLr(0.01, 0, 1), 0.01, 'a single step runs at lr');
});

test('BestEpoch keeps the highest val accuracy (then lowest val loss) and stops after patience epochs without one', () => {
  const epoch = (n: number, val_accuracy: number, val_loss: number) => ({
    epoch: n,
    train_loss: 0,
    train_accuracy: 0,
    val_loss,
    val_accuracy,
    seconds: 0,
  });
  const keeper = new BestEpoch(2);
  assert.equal(keeper.offer(epoch(1, 0.8, 0.5)), true);
  assert.equal(keeper.offer(epoch(2, 0.9, 0.6)), true, 'higher accuracy wins despite a higher loss');
  assert.equal(keeper.offer(epoch(3, 0.9, 0.7)), false);
  assert.equal(keeper.stop, false);
  assert.equal(keeper.offer(epoch(4, 0.9, 0.4)), true, 'as accurate with a lower loss');
  assert.equal(keeper.offer(epoch(5, 0.85, 0.3)), false);
  assert.equal(keeper.offer(epoch(6, 0.88, 0.3)), false);
  assert.equal(keeper.stop, true, 'two epochs without a better one');
  assert.equal(keeper.best?.epoch, 4);
  const patient = new BestEpoch();
  for (let i = 1; i <= 5; i++) patient.offer(epoch(i, 0.5, 1));
  assert.equal(patient.stop, false, 'without patience every epoch runs');
});
