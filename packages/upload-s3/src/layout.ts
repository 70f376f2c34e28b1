import { EVAL_FILE, MODEL_DIR, PLOTS_DIR, PREDICTIONS_FILE, REPORT_FILE, RESULTS_CSV, RUN_FILE, TRIALS_CSV, TRIALS_JSONL } from '@imgpipe/kit';

/** Files of a run directory worth publishing besides model/ (each only when present). */
export const RUN_FILES = [RESULTS_CSV, EVAL_FILE, REPORT_FILE, PREDICTIONS_FILE, RUN_FILE, TRIALS_CSV, TRIALS_JSONL];
/** Directories of a run directory published whole. */
export const RUN_DIRS = [MODEL_DIR, PLOTS_DIR];
/** The file name upload-s3 gives the loader snippet. */
export const SNIPPET_NAME = 'load_model.mjs';
