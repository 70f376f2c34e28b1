import { createHash } from 'node:crypto';
import { SPLIT_NAMES, UsageError, createRng, deriveSeed, shuffleInPlace, type SplitFractions, type SplitMethod, type SplitName } from '@imgpipe/kit';

/** train/val/test splits: exact stratified counts (random) or per-key hashing that is stable when rows are added. */

const FRACTION_FLAGS: Record<SplitName, string> = { train: '--train-pct', val: '--val-pct', test: '--test-pct' };

/** Fractions must each be in [0, 1] and sum to 1 within 1e-6; otherwise a UsageError naming the flags. */
export function checkFractions(fractions: SplitFractions): void {
  for (const name of SPLIT_NAMES) {
    const value = fractions[name];
    if (!Number.isFinite(value) || value < 0 || value > 1) {
      throw new UsageError(`expected ${FRACTION_FLAGS[name]} to be a number between 0 and 1, got ${value}`);
    }
  }
  const sum = fractions.train + fractions.val + fractions.test;
  if (Math.abs(sum - 1) > 1e-6) {
    throw new UsageError(
      `--train-pct ${fractions.train} + --val-pct ${fractions.val} + --test-pct ${fractions.test} = ${Number(sum.toFixed(9))}; ` +
        'they must add up to 1 (e.g. --train-pct 0.7 --val-pct 0.15 --test-pct 0.15)',
    );
  }
}

/**
 * How many of `count` items go to each split: the largest-remainder rounding of count * fraction, so the three
 * add up to `count` exactly. Ties in the remainders go to the earlier split (train, then val, then test).
 */
export function splitCounts(count: number, fractions: SplitFractions): Record<SplitName, number> {
  const shares = SPLIT_NAMES.map((name) => count * fractions[name]);
  const counts = shares.map((share) => Math.floor(share + 1e-9));
  let left = count - counts.reduce((a, b) => a + b, 0);
  const order = SPLIT_NAMES.map((_, index) => index).sort((a, b) => shares[b]! - counts[b]! - (shares[a]! - counts[a]!) || a - b);
  for (const index of order) {
    if (left <= 0) break;
    if (fractions[SPLIT_NAMES[index]!] === 0) continue;
    counts[index]! += 1;
    left -= 1;
  }
  // Only reachable when every remainder went to zero-fraction splits: give the rest to the largest fraction.
  if (left > 0) counts[order.find((index) => fractions[SPLIT_NAMES[index]!] > 0) ?? 0]! += left;
  return { train: counts[0]!, val: counts[1]!, test: counts[2]! };
}

interface SplitItem {
  /** The image's stable identity (e.g. s3://bucket/key): what --split-by hash hashes. */
  key: string;
  label: number;
}

/**
 * Assign each item (in input order) a split. `random`: per class, a seeded shuffle then the first
 * splitCounts(n).train go to train, the next val to val, the rest to test; exact per-class counts.
 * `hash`: each item's split comes from sha256(seed, key) alone, so appending rows never moves an existing item
 * (per-class counts are then only close to the fractions).
 */
export function assignSplits(items: readonly SplitItem[], fractions: SplitFractions, options: { method: SplitMethod; seed: number }): SplitName[] {
  checkFractions(fractions);
  const result = new Array<SplitName>(items.length);
  if (options.method === 'hash') {
    items.forEach((item, index) => {
      result[index] = hashSplit(item.key, fractions, options.seed);
    });
    return result;
  }
  const byLabel = new Map<number, number[]>();
  items.forEach((item, index) => {
    let list = byLabel.get(item.label);
    if (!list) {
      list = [];
      byLabel.set(item.label, list);
    }
    list.push(index);
  });
  for (const [label, indices] of [...byLabel].sort((a, b) => a[0] - b[0])) {
    const shuffled = shuffleInPlace([...indices], createRng(deriveSeed(options.seed, 'split', label)));
    const counts = splitCounts(shuffled.length, fractions);
    shuffled.forEach((itemIndex, position) => {
      result[itemIndex] = position < counts.train ? 'train' : position < counts.train + counts.val ? 'val' : 'test';
    });
  }
  return result;
}

/** The split of one key under --split-by hash: a uniform number in [0, 1) from sha256 compared with the fractions. */
export function hashSplit(key: string, fractions: SplitFractions, seed: number): SplitName {
  const digest = createHash('sha256').update(`imgpipe-split/${seed}/${key}`).digest();
  const unit = (digest.readUInt32BE(0) * 2 ** 21 + (digest.readUInt32BE(4) >>> 11)) / 2 ** 53;
  if (unit < fractions.train) return 'train';
  if (unit < fractions.train + fractions.val) return 'val';
  // Only reached through float rounding when test is 0: fall back to the last split that takes images.
  return fractions.test > 0 ? 'test' : fractions.val > 0 ? 'val' : 'train';
}
