import type { TrialSummary } from '@imgpipe/kit';

const PARAM_COLUMNS = ['lr', 'layer_size', 'dropout', 'batch_size', 'epochs'];

/** "t002 lr=0.001 layer_size=256": the params that vary across trials first. */
export function trialLabel(trial: TrialSummary): string {
  const shown = PARAM_COLUMNS.filter((k) => k in trial.params);
  return [trial.id, ...shown.map((k) => `${k}=${trial.params[k]}`)].join(' ');
}
