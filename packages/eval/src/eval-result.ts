import { PLOTS_DIR } from '@imgpipe/kit';

/** eval.json: what eval-model found, with no timestamps so the same model on the same data gives the same bytes. */
export const EVAL_FORMAT = 'imgpipe-eval/1';

export interface WorstItem {
  /** Position in the test split (the order of test.csv and the pixels). */
  row: number;
  /** The dataset row's index column. */
  index: number;
  source: string;
  true: string;
  predicted: string;
  /** Probability of the (wrong) predicted class. */
  probability: number;
  true_probability: number;
}

export interface EvalResult {
  format: typeof EVAL_FORMAT;
  split: 'test';
  count: number;
  labels: string[];
  test_loss: number;
  test_accuracy: number;
  /** Two classes only: AUC of p(labels[1]); null otherwise or when a class is missing from the split. */
  roc_auc: number | null;
  per_class: Record<string, { precision: number; recall: number; f1: number; support: number }>;
  /** Rows: true class; columns: predicted class; both in `labels` order. */
  confusion_matrix: number[][];
  worst: WorstItem[];
  /** augment: the card's (train --augment), 'none' for cards written before it was recorded. */
  model: { path: string; sha256: string; trial: string | null; backbone: string; backbone_sha256: string; augment: string };
  dataset: { path: string; manifest_sha256: string; test_pixels_sha256: string; test_rows_sha256: string };
  device: string;
  /** Test-time augmentation: 'flip' averages the softmax of each image and its mirror. */
  tta: 'none' | 'flip';
  gate: { min_accuracy: number; passed: boolean } | null;
  files: { predictions: string; report: string; plots: Record<string, string> };
}

export const PLOT_FILES = {
  confusion_matrix: `${PLOTS_DIR}/confusion-matrix.png`,
  learning_curves: `${PLOTS_DIR}/learning-curves.png`,
  worst_mistakes: `${PLOTS_DIR}/worst-mistakes.png`,
} as const;
