import assert from 'node:assert/strict';
import { test } from 'node:test';
import { SPLIT_NAMES, UsageError, type SplitFractions } from '@imgpipe/kit';
import { assignSplits, checkFractions, hashSplit, splitCounts } from './split.js';

const FRACTIONS: SplitFractions[] = [
  { train: 0.7, val: 0.15, test: 0.15 },
  { train: 0.8, val: 0.1, test: 0.1 },
  { train: 1 / 3, val: 1 / 3, test: 1 / 3 },
  { train: 0.5, val: 0.5, test: 0 },
  { train: 1, val: 0, test: 0 },
  { train: 0.29, val: 0.42, test: 0.29 },
];

test('splitCounts is the largest-remainder rounding: exact totals, each within 1 of its share', () => {
  for (const fractions of FRACTIONS) {
    for (let count = 0; count <= 203; count++) {
      const counts = splitCounts(count, fractions);
      assert.equal(counts.train + counts.val + counts.test, count, `${count} ${JSON.stringify(fractions)}`);
      for (const name of SPLIT_NAMES) {
        assert.ok(Math.abs(counts[name] - count * fractions[name]) < 1, `${name} ${count} ${JSON.stringify(fractions)}`);
        if (fractions[name] === 0) assert.equal(counts[name], 0);
      }
    }
  }
  assert.deepEqual(splitCounts(10, { train: 0.7, val: 0.15, test: 0.15 }), { train: 7, val: 2, test: 1 });
  assert.deepEqual(splitCounts(100, { train: 0.29, val: 0.42, test: 0.29 }), { train: 29, val: 42, test: 29 });
});

test('checkFractions rejects sums off 1 by more than 1e-6 and values outside [0, 1]', () => {
  checkFractions({ train: 0.7, val: 0.15, test: 0.15 });
  checkFractions({ train: 0.7000004, val: 0.15, test: 0.15 });
  assert.throws(
    () => checkFractions({ train: 0.7, val: 0.2, test: 0.2 }),
    (error: unknown) => error instanceof UsageError && /--train-pct/.test(error.message) && error.exitCode === 2,
  );
  assert.throws(() => checkFractions({ train: 0.70001, val: 0.15, test: 0.15 }), UsageError);
  assert.throws(() => checkFractions({ train: 1.2, val: -0.1, test: -0.1 }), /--train-pct/);
});

function items(perClass: number[]) {
  const list: { key: string; label: number }[] = [];
  perClass.forEach((count, label) => {
    for (let i = 0; i < count; i++) list.push({ key: `s3://b/${label}/${i}.jpg`, label });
  });
  // Interleave classes the way a real CSV might be ordered.
  return list.sort((a, b) => a.key.split('/').at(-1)!.localeCompare(b.key.split('/').at(-1)!));
}

test('random splits are stratified with exact per-class counts, seeded and deterministic', () => {
  for (const perClass of [
    [10, 10],
    [7, 23],
    [1, 2, 50],
    [101, 99],
  ]) {
    for (const fractions of FRACTIONS) {
      const list = items(perClass);
      const splits = assignSplits(list, fractions, { method: 'random', seed: 42 });
      perClass.forEach((count, label) => {
        const expected = splitCounts(count, fractions);
        for (const name of SPLIT_NAMES) {
          const got = list.filter((item, index) => item.label === label && splits[index] === name).length;
          assert.equal(got, expected[name], `class ${label} of ${count}, ${name}, ${JSON.stringify(fractions)}`);
        }
      });
      assert.deepEqual(assignSplits(list, fractions, { method: 'random', seed: 42 }), splits);
    }
  }
  const list = items([200, 200]);
  const a = assignSplits(list, FRACTIONS[0]!, { method: 'random', seed: 1 });
  const b = assignSplits(list, FRACTIONS[0]!, { method: 'random', seed: 2 });
  assert.notDeepEqual(a, b, 'another seed gives another split');
});

test('hash splits never move an existing key when rows are appended, and follow the fractions roughly', () => {
  const fractions = { train: 0.7, val: 0.15, test: 0.15 };
  const first = items([300, 300]);
  const more = [...first, ...items([400, 350]).filter((item) => !first.some((f) => f.key === item.key))];
  const before = assignSplits(first, fractions, { method: 'hash', seed: 7 });
  const after = assignSplits(more, fractions, { method: 'hash', seed: 7 });
  first.forEach((item, index) => {
    assert.equal(after[index], before[index], item.key);
  });
  const shuffled = [...more].reverse();
  const reversed = assignSplits(shuffled, fractions, { method: 'hash', seed: 7 });
  shuffled.forEach((_item, index) => {
    assert.equal(reversed[index], after[more.length - 1 - index]);
  });
  const train = after.filter((s) => s === 'train').length / after.length;
  assert.ok(train > 0.64 && train < 0.76, `train share ${train}`);
  const otherSeed = more.map((item) => hashSplit(item.key, fractions, 8));
  assert.ok(
    otherSeed.some((split, index) => split !== after[index]),
    'the seed changes the hash split',
  );
});
