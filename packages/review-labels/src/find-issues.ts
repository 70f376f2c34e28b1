import { confidentLearning } from './confident-learning.js';
import { medianOf, type Neighbours } from './neighbours.js';

export type IssueKind = 'mislabelled' | 'outlier' | 'near-duplicate';

/** One suspicious image: what is wrong with it (one or more kinds), why, and how suspicious. */
export interface Issue {
  /** Position in the pooled rows (train, then val, then test). */
  row: number;
  kinds: IssueKind[];
  /** The confident class when it is not the given label (mislabelled); else -1. */
  suggested: number;
  /** Kind-specific score of the first kind: 1 - p(given label), the outlier z-score, or the cosine. */
  score: number;
  /** 0..1, comparable across kinds: the order of label-issues.csv. */
  suspicion: number;
  /** The duplicate's row (near-duplicate), else -1. */
  duplicateOf: number;
  why: string;
}

interface FindIssuesInput {
  probs: Float32Array;
  labels: Int32Array;
  classes: string[];
  /** Split index of each row; duplicates are reported on the row in the later split. */
  group: Int32Array;
  neighbours: Neighbours;
  /** count x classes robust z-scores of the distance to each class (classDistanceZ). */
  classZ: Float64Array;
  outlierZ: number;
  duplicateThreshold: number;
}

export interface FoundIssues {
  issues: Issue[];
  thresholds: Float64Array;
  noiseRate: number;
  /** Per row: how badly it fits its best-fitting class (min over classes of classZ), the outlier ranking. */
  outlierScore: Float64Array;
  counts: Record<IssueKind, number>;
}

/** A near-duplicate is at most this fraction of its class's median neighbour distance away. */
const DUPLICATE_FRACTION = 0.02;

const pct = (p: number) => `${(p * 100).toFixed(1)}%`;

export function findIssues(input: FindIssuesInput): FoundIssues {
  const { probs, labels, classes, group, neighbours, classZ } = input;
  const count = labels.length;
  const k = classes.length;
  const cl = confidentLearning(probs, labels, k);
  const byRow = new Map<number, Issue>();
  const add = (row: number, kind: IssueKind, score: number, suspicion: number, why: string, extra: Partial<Issue> = {}) => {
    const existing = byRow.get(row);
    if (existing) {
      existing.kinds.push(kind);
      existing.why += `; ${why}`;
      if (suspicion > existing.suspicion) existing.suspicion = suspicion;
      Object.assign(existing, extra);
      return;
    }
    byRow.set(row, { row, kinds: [kind], suggested: -1, score, suspicion, duplicateOf: -1, why, ...extra });
  };

  for (const row of cl.flagged) {
    const given = labels[row]!;
    const suggested = cl.confident[row]!;
    const pGiven = probs[row * k + given]!;
    const pSuggested = probs[row * k + suggested]!;
    add(
      row,
      'mislabelled',
      1 - pGiven,
      1 - pGiven,
      `labelled ${classes[given]} (p ${pct(pGiven)}, class mean ${pct(cl.thresholds[given]!)}) but looks like ${classes[suggested]} (p ${pct(pSuggested)} >= class mean ${pct(cl.thresholds[suggested]!)})`,
      { suggested },
    );
  }

  const outlierScore = new Float64Array(count);
  for (let i = 0; i < count; i++) {
    let min = Number.POSITIVE_INFINITY;
    for (let c = 0; c < k; c++) {
      const z = classZ[i * k + c]!;
      if (Number.isFinite(z) && z < min) min = z;
    }
    outlierScore[i] = Number.isFinite(min) ? min : 0;
  }
  const sortedScores = Float64Array.from(outlierScore).sort();
  for (let i = 0; i < count; i++) {
    const z = outlierScore[i]!;
    if (!(z > input.outlierZ)) continue;
    const below = upperBound(sortedScores, z) / count;
    const own = classZ[i * k + labels[i]!]!;
    add(
      i,
      'outlier',
      z,
      below,
      `fits no class: ${z.toFixed(1)} robust SDs farther from its nearest class than that class's own images are (${own.toFixed(1)} from its own class, ${classes[labels[i]!]})`,
    );
  }

  // A near-duplicate must also be far closer than images of its class usually are to their neighbours: where a
  // class is tight (features of simple pictures), cosine alone would pair every image with another.
  const typical = classes.map((_, c) => {
    const own: number[] = [];
    for (let i = 0; i < count; i++)
      if (labels[i] === c && Number.isFinite(neighbours.classDistance[i * k + c]!)) own.push(neighbours.classDistance[i * k + c]!);
    return own.length > 0 ? medianOf(own) : Number.POSITIVE_INFINITY;
  });
  for (let i = 0; i < count; i++) {
    const j = neighbours.nearestOther[i]!;
    const cosine = neighbours.nearestOtherCosine[i]!;
    if (j < 0 || !(cosine >= input.duplicateThreshold) || group[i]! < group[j]!) continue;
    if (1 - cosine > DUPLICATE_FRACTION * typical[labels[i]!]!) continue;
    add(
      i,
      'near-duplicate',
      cosine,
      cosine,
      `near-duplicate (cosine ${cosine.toFixed(4)}) of an image in another split${labels[i] === labels[j] ? '' : ` labelled ${classes[labels[j]!]}`}`,
      { duplicateOf: j },
    );
  }

  const issues = [...byRow.values()].sort((a, b) => b.suspicion - a.suspicion || a.row - b.row);
  const counts = { mislabelled: 0, outlier: 0, 'near-duplicate': 0 } as Record<IssueKind, number>;
  for (const issue of issues) for (const kind of issue.kinds) counts[kind] += 1;
  return { issues, thresholds: cl.thresholds, noiseRate: cl.noiseRate, outlierScore, counts };
}

/** Number of values <= x in a sorted array. */
function upperBound(sorted: Float64Array, x: number): number {
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (sorted[mid]! <= x) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
