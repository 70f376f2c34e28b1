import { UsageError, type ToolCli } from '@imgpipe/core';

export const trainCli: ToolCli = {
  name: 'train',
  summary: 'Sweep heads over cached backbone features; write a run directory.',
  configKeys: [],
  async run() {
    throw new UsageError('train is not built yet (issue #7); only --help works for now');
  },
};
