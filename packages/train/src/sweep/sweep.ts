import { createRng, deriveSeed, shuffleInPlace, UsageError, type TrialParams } from '@imgpipe/kit';

export interface SearchSpace {
  lr: number[];
  layer_size: number[];
  dropout: number[];
  batch_size: number[];
  epochs: number[];
}

export interface Trial {
  /** 0-based position in the sweep. */
  index: number;
  /** 't001', 't002', ...: stable across resumes. */
  id: string;
  params: TrialParams;
  /** Seed of this trial's initialisation, shuffling and dropout: depends on the run seed and params only. */
  seed: number;
}

export type Strategy = 'grid' | 'random';

/** Every combination, lr outermost (the seed's loop order). */
function gridOf(space: SearchSpace): TrialParams[] {
  const out: TrialParams[] = [];
  for (const lr of unique(space.lr))
    for (const layer_size of unique(space.layer_size))
      for (const dropout of unique(space.dropout))
        for (const batch_size of unique(space.batch_size))
          for (const epochs of unique(space.epochs)) out.push({ lr, layer_size, dropout, batch_size, epochs });
  return out;
}

function unique(values: number[]): number[] {
  return [...new Set(values)];
}

/**
 * The trials of a sweep. grid: every combination. random: `runs` distinct combinations drawn with the seed
 * (0 or more than the grid holds: all of them, in seeded order).
 */
export function planTrials(space: SearchSpace, strategy: Strategy, runs: number, seed: number): Trial[] {
  for (const [key, values] of Object.entries(space)) {
    if (values.length === 0) throw new UsageError(`the search space for ${key} is empty`);
  }
  let points = gridOf(space);
  if (strategy === 'random') {
    points = shuffleInPlace(points, createRng(deriveSeed(seed, 'random-search')));
    if (runs > 0) points = points.slice(0, runs);
  }
  return points.map((params, index) => ({
    index,
    id: `t${String(index + 1).padStart(3, '0')}`,
    params,
    seed: deriveSeed(seed, 'trial', params.lr, params.layer_size, params.dropout, params.batch_size, params.epochs),
  }));
}

export function describeParams(p: TrialParams): string {
  return `lr=${p.lr} layer_size=${p.layer_size} dropout=${p.dropout} batch_size=${p.batch_size} epochs=${p.epochs}`;
}
