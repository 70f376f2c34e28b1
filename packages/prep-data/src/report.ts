import { join } from 'node:path';
import { REJECTED_FILE, type DatasetManifest, type Logger } from '@imgpipe/kit';
import type { PrepItem } from './input.js';

/** rejected.csv rows and the summary lines on stderr. */
export interface RejectedRow {
  line: number;
  source: string;
  local_image: string;
  label: number;
  category: string;
  reason: string;
  detail: string;
}

export const REJECTED_COLUMNS = ['line', 'source', 'local_image', 'label', 'category', 'reason', 'detail'] as const;

export function rejectedRow(item: PrepItem, reason: string, detail: string): RejectedRow {
  return {
    line: item.line,
    source: item.source,
    local_image: item.row.local_image ?? '',
    label: item.label,
    category: item.category,
    reason,
    detail,
  };
}

export function describeRejected(rejected: readonly RejectedRow[]): string {
  if (rejected.length === 0) return 'no image was listed';
  const counts = new Map<string, number>();
  for (const row of rejected) counts.set(row.reason, (counts.get(row.reason) ?? 0) + 1);
  const first = rejected.slice(0, 3).map((row) => `line ${row.line} ${row.local_image || row.source}: ${row.reason}`);
  return `reasons: ${[...counts].map(([reason, n]) => `${reason} ${n}`).join(', ')}; e.g. ${first.join('; ')}`;
}

export function summarise(
  log: Logger,
  manifest: DatasetManifest,
  rejected: readonly RejectedRow[],
  total: number,
  seconds: number,
  out: string,
): void {
  const { train, val, test } = manifest.splits;
  const perClass = manifest.classes
    .map((name, label) => `${name} ${train.per_class[label]! + val.per_class[label]! + test.per_class[label]!}`)
    .join(', ');
  const usable = train.count + val.count + test.count;
  const counts = new Map<string, number>();
  for (const row of rejected) counts.set(row.reason, (counts.get(row.reason) ?? 0) + 1);
  const rejectedText =
    rejected.length === 0
      ? 'none rejected'
      : `${rejected.length} rejected (${[...counts].map(([r, n]) => `${r} ${n}`).join(', ')}; see ${join(out, REJECTED_FILE)})`;
  log.info(
    `${usable} images -> train ${train.count}, val ${val.count}, test ${test.count} (${perClass}); ${rejectedText}; ` +
      `${manifest.image_size}x${manifest.image_size} ${manifest.fit}; ${seconds.toFixed(1)}s, ${(total / Math.max(seconds, 1e-3)).toFixed(0)} images/s`,
  );
  for (const split of ['train', 'val', 'test'] as const) {
    if (manifest.splits[split].count === 0 && manifest.split.fractions[split] > 0)
      log.warn(`the ${split} split is empty: too few images for --${split}-pct ${manifest.split.fractions[split]}`);
  }
}
