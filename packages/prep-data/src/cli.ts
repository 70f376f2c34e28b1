import { UsageError, type ToolCli } from '@imgpipe/core';

export const prepDataCli: ToolCli = {
  name: 'prep-data',
  summary: 'Decode, resize and split images into a dataset directory.',
  configKeys: [],
  async run() {
    throw new UsageError('prep-data is not built yet (issue #6); only --help works for now');
  },
};
