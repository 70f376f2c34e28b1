/** Files of a run directory worth publishing besides model/ (each only when present). */
export const RUN_FILES = ['results.csv', 'eval.json', 'report.html', 'predictions.csv', 'run.json', 'trials.csv', 'trials.jsonl'];
/** Directories of a run directory published whole. */
export const RUN_DIRS = ['model', 'plots'];
/** The file name upload-s3 gives the loader snippet. */
export const SNIPPET_NAME = 'load_model.mjs';
