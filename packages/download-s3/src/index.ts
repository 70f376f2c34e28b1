export { downloadS3Cli } from './cli.js';
export { runDownloadS3, type DownloadS3Options, type DownloadSummary, type RowResult, type RowStatus } from './download.js';
