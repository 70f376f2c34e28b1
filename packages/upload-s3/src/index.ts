export { uploadS3Cli } from './cli.js';
export { runUploadS3, planUpload, type UploadS3Options, type UploadSummary, type UploadItem } from './upload.js';
export { LOAD_MODEL_SNIPPET, SNIPPET_NAME } from './snippet.js';
