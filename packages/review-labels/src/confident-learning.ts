/**
 * Confident learning (Northcutt, Jiang & Chuang, "Confident Learning: Estimating Uncertainty in Dataset Labels",
 * JAIR 2021) on out-of-sample probabilities: per-class thresholds t_j = the mean probability of class j over the
 * images labelled j. An image labelled i counts for class j when p_j >= t_j; among the classes it counts for, the
 * most probable one is its confident class. It is flagged as likely mislabelled when that class is not i (another
 * class reached its threshold and beats the given label), and ranked by its given label's probability (lowest
 * first). The confident joint (given x confident class), calibrated to the class counts, estimates the noise rate.
 */
interface ConfidentLearning {
  /** t_j; NaN for a class nobody is labelled with. */
  thresholds: Float64Array;
  /** Per image: the confident class, or -1 when no class reaches its threshold. */
  confident: Int32Array;
  /** Images flagged as likely mislabelled, most suspicious (lowest given-label probability) first. */
  flagged: number[];
  /** Calibrated confident joint, classes x classes (rows: given label), summing to the number of images counted. */
  joint: number[][];
  /** Estimated fraction of wrong labels: the off-diagonal mass of the calibrated joint. */
  noiseRate: number;
}

export function confidentLearning(probs: Float32Array, labels: Int32Array, classes: number): ConfidentLearning {
  const count = labels.length;
  const sums = new Float64Array(classes);
  const members = new Float64Array(classes);
  for (let i = 0; i < count; i++) {
    const given = labels[i]!;
    sums[given]! += probs[i * classes + given]!;
    members[given]! += 1;
  }
  const thresholds = Float64Array.from(sums, (sum, j) => (members[j]! > 0 ? sum / members[j]! : Number.NaN));
  const confident = new Int32Array(count).fill(-1);
  const raw = Array.from({ length: classes }, () => new Float64Array(classes));
  const flagged: number[] = [];
  for (let i = 0; i < count; i++) {
    let best = -1;
    let bestP = -1;
    for (let j = 0; j < classes; j++) {
      const p = probs[i * classes + j]!;
      if (p >= thresholds[j]! && p > bestP) {
        best = j;
        bestP = p;
      }
    }
    confident[i] = best;
    if (best < 0) continue;
    raw[labels[i]!]![best]! += 1;
    if (best !== labels[i]) flagged.push(i);
  }
  flagged.sort((a, b) => probs[a * classes + labels[a]!]! - probs[b * classes + labels[b]!]! || a - b);
  // Calibrate: each row scaled to the number of images with that given label (cleanlab's calibrate_confident_joint).
  const joint = raw.map((row, i) => {
    const total = row.reduce((s, v) => s + v, 0);
    return Array.from(row, (v) => (total > 0 ? (v / total) * members[i]! : 0));
  });
  let off = 0;
  let all = 0;
  joint.forEach((row, i) => {
    row.forEach((v, j) => {
      all += v;
      if (i !== j) off += v;
    });
  });
  return { thresholds, confident, flagged, joint, noiseRate: all > 0 ? off / all : 0 };
}
