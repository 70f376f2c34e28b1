import { backboneSourceSha256 } from '@imgpipe/engines';
import { sha256, type BackboneInfo, type Dataset, type RunInputs } from '@imgpipe/kit';
import type { TrainOptions } from './train-options.js';

/** run.json's `inputs` (typed in @imgpipe/kit's run-dir.ts): everything a run's trials depend on, by content. */
export function runInputs(dataset: Dataset, options: TrainOptions, backbone: BackboneInfo): RunInputs {
  return {
    dataset_manifest_sha256: dataset.manifestSha256,
    backbone: options.backbone,
    backbone_sha256: backboneSourceSha256(backbone),
    feature_layer: backbone.feature_layer,
    preprocess: backbone.preprocess.name,
    search_space: options.space,
    strategy: options.strategy,
    hyper_param_runs: options.runs,
    seed: options.seed,
    patience: options.patience ?? null,
    augment: options.augment ?? 'none',
  };
}

export function runKey(inputs: RunInputs): string {
  return sha256(JSON.stringify(inputs));
}

/**
 * Identity of the command line, before anything is loaded (the backbone by name): what the lock of a starting train
 * and a planned run are keyed by. Two commands with the same command key but other file contents are told apart by
 * runKey.
 */
export function commandKey(dataset: Dataset, options: TrainOptions): string {
  return sha256(
    JSON.stringify({
      dataset: dataset.manifestSha256,
      backbone: options.backbone,
      feature_layer: options.featureLayer ?? null,
      preprocess: options.preprocess ?? null,
      space: options.space,
      strategy: options.strategy,
      runs: options.runs,
      seed: options.seed,
      patience: options.patience ?? null,
      ...(options.augment === 'flip' ? { augment: 'flip' } : {}),
    }),
  );
}

const LABELS: Record<keyof RunInputs, string> = {
  dataset_manifest_sha256: 'the dataset (its manifest.json sha256)',
  backbone: '--backbone',
  backbone_sha256: "the backbone's content (sha256 of its files: replaced in place?)",
  feature_layer: '--feature-layer',
  preprocess: '--preprocess',
  search_space: 'the search space (--lr, --layer-size, --dropout, --batch-size, --epochs)',
  strategy: '--strategy',
  hyper_param_runs: '--hyper-param-runs',
  seed: '--seed',
  patience: '--patience',
  augment: '--augment',
};

const short = (value: unknown) => {
  const text = typeof value === 'string' ? value : JSON.stringify(value);
  return /^[0-9a-f]{64}$/.test(text) ? `${text.slice(0, 12)}…` : text;
};

/** What differs between two runs' inputs, one phrase each: "--seed (42 -> 1)". Inputs not recorded: undefined. */
export function changedInputs(before: Partial<RunInputs> | undefined, after: RunInputs): string[] | undefined {
  if (!before || typeof before !== 'object') return undefined;
  const changed: string[] = [];
  for (const name of Object.keys(LABELS) as (keyof RunInputs)[]) {
    if (JSON.stringify(before[name] ?? null) !== JSON.stringify(after[name]))
      changed.push(`${LABELS[name]} (${short(before[name] ?? null)} -> ${short(after[name])})`);
  }
  return changed;
}
