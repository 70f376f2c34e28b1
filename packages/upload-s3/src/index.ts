export { uploadS3Cli } from './cli.js';
export { runUploadS3, planUpload, type UploadS3Options, type UploadSummary, type UploadItem } from './upload.js';
export { readSnippet, SNIPPET_PATH } from './snippet.js';
export { SNIPPET_NAME } from './layout.js';
