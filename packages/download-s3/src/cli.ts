import { UsageError, type ToolCli } from '@imgpipe/core';

export const downloadS3Cli: ToolCli = {
  name: 'download-s3',
  summary: 'Download the images listed in a CSV from S3; print the CSV with local_image.',
  configKeys: [],
  async run() {
    throw new UsageError('download-s3 is not built yet (issue #3); only --help works for now');
  },
};
