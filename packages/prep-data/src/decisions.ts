import { parseLabelDecisions, sha256, type DatasetManifest, type Logger } from '@imgpipe/kit';
import type { EarlyReject, PrepItem } from './prep-item.js';

/** A label-decisions.csv (review-labels' page exports it) as prep-data reads it: never written to. */
export interface DecisionsInput {
  text: Buffer;
  /** The path, for messages and the manifest. */
  source: string;
}

interface AppliedDecisions {
  items: PrepItem[];
  dropped: EarlyReject[];
  review: NonNullable<DatasetManifest['review']>;
}

/**
 * Apply review decisions to the CSV's items: an item is matched by the sha256 of its image file (so a decision
 * follows the picture to another path), or by its source when the decision has no sha256. `drop` removes it (listed
 * in rejected.csv as dropped-by-review), `relabel` gives it the decided class; `keep` changes nothing.
 */
export async function applyDecisions(
  items: readonly PrepItem[],
  classes: readonly string[],
  input: DecisionsInput,
  log: Logger,
): Promise<AppliedDecisions> {
  const decisions = await parseLabelDecisions(input.text, input.source, classes);
  const bySha = new Map(decisions.filter((d) => d.sha256).map((d) => [d.sha256, d]));
  const bySource = new Map(decisions.filter((d) => !d.sha256).map((d) => [d.source, d]));
  const matched = new Set<number>();
  const kept: PrepItem[] = [];
  const dropped: EarlyReject[] = [];
  let relabelled = 0;
  let keptCount = 0;
  for (const item of items) {
    const decision = (item.contentSha256 ? bySha.get(item.contentSha256) : undefined) ?? bySource.get(item.source);
    if (!decision) {
      kept.push(item);
      continue;
    }
    matched.add(decision.line);
    if (decision.action === 'drop') {
      dropped.push({ item, reason: 'dropped-by-review', detail: `dropped on line ${decision.line} of ${input.source}` });
    } else if (decision.action === 'relabel' && decision.label !== item.label) {
      relabelled += 1;
      kept.push({ ...item, label: decision.label!, category: classes[decision.label!]! });
    } else {
      if (decision.action === 'keep') keptCount += 1;
      kept.push(item);
    }
  }
  const unmatched = decisions.filter((d) => !matched.has(d.line));
  if (unmatched.length > 0) {
    log.warn(
      `${input.source}: ${unmatched.length} decision${unmatched.length > 1 ? 's' : ''} name${unmatched.length > 1 ? '' : 's'} no image of this CSV (first: line ${unmatched[0]!.line}); ignored`,
    );
  }
  log.info(`${input.source}: ${dropped.length} dropped, ${relabelled} relabelled, ${keptCount} kept as labelled by review`);
  return {
    items: kept,
    dropped,
    review: {
      decisions_file: input.source,
      decisions_sha256: sha256(input.text),
      dropped: dropped.length,
      relabelled,
      kept: keptCount,
      unmatched: unmatched.length,
    },
  };
}
