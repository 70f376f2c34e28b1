import { UsageError } from '@imgpipe/kit';

/** Shard `index` of `count`: the data rows whose 0-based position mod count is index (round robin, so shards stay even). */
export interface Shard {
  index: number;
  count: number;
}

/** --shard I/N, 0 <= I < N. */
export function parseShard(text: string): Shard {
  const match = /^\s*(\d+)\s*\/\s*(\d+)\s*$/.exec(text);
  const index = Number(match?.[1]);
  const count = Number(match?.[2]);
  if (!match || !Number.isSafeInteger(count) || count < 1 || index >= count) {
    throw new UsageError(`expected --shard to be I/N with 0 <= I < N (e.g. 0/4), got '${text}'`);
  }
  return { index, count };
}

export function inShard(row: number, shard: Shard | undefined): boolean {
  return !shard || row % shard.count === shard.index;
}
