import { UsageError, type ToolCli } from '@imgpipe/core';

export const uploadS3Cli: ToolCli = {
  name: 'upload-s3',
  summary: 'Upload results.csv, the model and a loader snippet to S3.',
  configKeys: [],
  async run() {
    throw new UsageError('upload-s3 is not built yet (issue #3); only --help works for now');
  },
};
