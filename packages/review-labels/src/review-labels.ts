import { basename, join } from 'node:path';
import { loadTf, type Device } from '@imgpipe/engines';
import {
  acquireLock,
  readStylesheet,
  silentLogger,
  SPLIT_NAMES,
  UsageError,
  writeFileAtomic,
  type Logger,
  type Pointer,
  type ProgressEvent,
} from '@imgpipe/kit';
import { allFeatures } from './all-features.js';
import { findIssues, type FoundIssues } from './find-issues.js';
import { contentSha256, ISSUES_FILE, issuesCsv, pageItems, REVIEW_PAGE_FILE, type PooledRow } from './issue-files.js';
import { classDistanceZ, findNeighbours } from './neighbours.js';
import { outOfSampleProbabilities } from './out-of-sample.js';
import { renderReviewPage } from './review-page.js';
import { readRunInputs } from './run-inputs.js';

interface ReviewLabelsOptions {
  runDir: string;
  /** The dataset; default: the one run.json names. */
  dataDir?: string | undefined;
  folds?: number;
  /** Neighbours per class for the outlier distance. */
  neighbours?: number;
  /** Robust z-score beyond which an image fits no class. */
  outlierZ?: number;
  /** Feature cosine at or above which two images of different splits are near-duplicates. */
  duplicateThreshold?: number;
  /** Issues shown on the page (all are in label-issues.csv). */
  pageLimit?: number;
  device: Device;
  batchSize: number;
  cacheDir?: string | undefined;
  /** Relative local_image paths resolve against this (for images without a recorded content sha256). */
  cwd?: string;
  waitLockSeconds?: number;
  log?: Logger;
  /** Progress events of each phase (features per split, heads, neighbours); the bars go to stderr unless quiet. */
  onProgress?: (event: ProgressEvent) => void;
}

export interface ReviewLabelsResult extends FoundIssues {
  pointer: Pointer;
  probs: Float32Array;
  /** Pooled rows in the order of probs and outlierScore: train, then val, then test. */
  pooled: PooledRow[];
  featuresFromCache: boolean;
  seconds: number;
}

function checkOptions(options: ReviewLabelsOptions) {
  const folds = options.folds ?? 5;
  const k = options.neighbours ?? 10;
  const outlierZ = options.outlierZ ?? 4;
  const duplicateThreshold = options.duplicateThreshold ?? 0.99;
  const pageLimit = options.pageLimit ?? 500;
  if (!Number.isInteger(folds) || folds < 2) throw new UsageError(`expected --folds to be an integer of at least 2, got ${options.folds}`);
  if (!Number.isInteger(k) || k < 1) throw new UsageError(`expected --neighbours to be a positive integer, got ${options.neighbours}`);
  if (!(duplicateThreshold > 0 && duplicateThreshold <= 1))
    throw new UsageError(`expected --duplicate-threshold to be a number in (0, 1], got ${options.duplicateThreshold}`);
  if (!Number.isFinite(outlierZ)) throw new UsageError(`expected --outlier-z to be a number, got ${options.outlierZ}`);
  if (!Number.isInteger(pageLimit) || pageLimit < 0)
    throw new UsageError(`expected --page-limit to be a non-negative integer, got ${options.pageLimit}`);
  if (!Number.isInteger(options.batchSize) || options.batchSize < 1)
    throw new UsageError(`expected --batch-size to be a positive integer, got ${options.batchSize}`);
  return { folds, k, outlierZ, duplicateThreshold, pageLimit };
}

/**
 * Find the images whose labels are likely wrong (confident learning on K-fold out-of-sample probabilities), the
 * outliers that fit no class and the near-duplicates across splits of a run's dataset; write label-issues.csv and
 * label-review.html into the run directory (locked meanwhile; both files atomically).
 */
export async function runReviewLabels(options: ReviewLabelsOptions): Promise<ReviewLabelsResult> {
  const started = performance.now();
  const log = options.log ?? silentLogger;
  const settings = checkOptions(options);
  const inputs = await readRunInputs(options.runDir, options.dataDir, log);
  const { runDir, dataset } = inputs;
  const classes = dataset.manifest.classes;
  const lock = await acquireLock(runDir, { what: 'run directory', flag: '--run', waitSeconds: options.waitLockSeconds ?? 0 });
  try {
    const { onProgress } = options;
    const features = await allFeatures(inputs, { device: options.device, batchSize: options.batchSize, cacheDir: options.cacheDir, log, onProgress });
    const pooled: PooledRow[] = [];
    const groups: number[] = [];
    for (const [g, split] of SPLIT_NAMES.entries()) {
      for (const [position, row] of (await dataset.rows(split)).entries()) {
        pooled.push({ split, position, row });
        groups.push(g);
      }
    }
    if (pooled.length < settings.folds * 2) throw new UsageError(`${dataset.dir} has ${pooled.length} images: too few for --folds ${settings.folds}`);
    const labels = Int32Array.from(pooled, (p) => p.row.label);
    const group = Int32Array.from(groups);
    const { tf } = await loadTf(options.device, log);
    const probs = await outOfSampleProbabilities({
      tf,
      features: features.features,
      labels,
      dim: features.dim,
      classes: classes.length,
      folds: settings.folds,
      params: inputs.params,
      seed: inputs.seed,
      log,
      onProgress,
    });
    const neighbours = await findNeighbours({
      tf,
      features: features.features,
      dim: features.dim,
      labels,
      classes: classes.length,
      group,
      k: settings.k,
      quiet: log.quiet,
      onProgress,
    });
    const classZ = classDistanceZ(neighbours, labels, classes.length);
    const found = findIssues({
      probs,
      labels,
      classes,
      group,
      neighbours,
      classZ,
      outlierZ: settings.outlierZ,
      duplicateThreshold: settings.duplicateThreshold,
    });

    const cwd = options.cwd ?? process.cwd();
    const hashes: string[] = [];
    for (const issue of found.issues) hashes.push(await contentSha256(pooled[issue.row]!.row, cwd));
    const issuesPath = join(runDir, ISSUES_FILE);
    const pagePath = join(runDir, REVIEW_PAGE_FILE);
    await writeFileAtomic(issuesPath, await issuesCsv(found.issues, pooled, hashes, probs, classes));
    const items = await pageItems(found.issues.slice(0, settings.pageLimit), { dataset, pooled, hashes, probs });
    const title = `Label review of ${basename(runDir)}`;
    await writeFileAtomic(pagePath, renderReviewPage({ title, classes, items, total: found.issues.length, stylesheet: await readStylesheet() }));

    const seconds = (performance.now() - started) / 1000;
    const { counts } = found;
    log.info(
      `${pooled.length} images (${settings.folds} folds): ${counts.mislabelled} likely mislabelled, ${counts.outlier} outliers, ${counts['near-duplicate']} near-duplicates across splits; ` +
        `estimated label noise ${(found.noiseRate * 100).toFixed(1)}%; ${seconds.toFixed(1)}s${features.fromCache ? ' (features from cache)' : ''}; wrote ${issuesPath} and ${pagePath}`,
    );
    const pointer: Pointer = {
      kind: 'label-review',
      path: runDir,
      best: inputs.modelDir,
      issues: issuesPath,
      page: pagePath,
      images: pooled.length,
      mislabelled: counts.mislabelled,
      outliers: counts.outlier,
      near_duplicates: counts['near-duplicate'],
      estimated_noise_rate: Number(found.noiseRate.toFixed(4)),
    };
    return { ...found, pointer, probs, pooled, featuresFromCache: features.fromCache, seconds };
  } finally {
    await lock.release();
  }
}
