import type { Device } from '@imgpipe/engines';
import type { Logger, ProgressEvent } from '@imgpipe/kit';
import type { Augment } from './augment.js';
import type { FineTuneSettings } from './fine-tune/fine-tune.js';
import type { SearchSpace, Strategy } from './sweep/sweep.js';

/** What a sweep is asked to do: the CLI's flags and config, resolved. */
export interface TrainOptions {
  /** The dataset directory (prep-data's output). */
  dataDir: string;
  /** Parent of the run directory. */
  out: string;
  /** Continue this run directory (skips its finished trials). */
  resume?: string;
  space: SearchSpace;
  strategy: Strategy;
  /** Random search budget; 0: every combination. */
  runs: number;
  seed: number;
  device: Device;
  backbone: string;
  featureLayer?: string;
  preprocess?: string;
  cacheDir?: string;
  /** 'flip': the heads also train on the features of the mirrored training images (default 'none'). */
  augment?: Augment;
  /** Batch size of feature extraction (data.batch_size). */
  extractBatchSize: number;
  patience?: number;
  /** Trials trained at once; default 1 on CPU/wasm, 3 on GPUs. */
  parallel?: number;
  /** Stop the sweep (exit 1) once more trials than this have failed; default: no limit. */
  maxFailedTrials?: number;
  /** After the sweep, train a TF.js layers backbone (all of it, or its BatchNormalization layers) with the best head. */
  fineTune?: FineTuneSettings;
  projectName?: string;
  log?: Logger;
  onProgress?: (event: ProgressEvent) => void;
  /** Wait this long for another process's lock on the run (default: fail at once with exit 75). */
  waitLockSeconds?: number;
}
