import { UsageError, type ToolCli } from '@imgpipe/core';

export const serveCli: ToolCli = {
  name: 'serve',
  summary: 'Serve a model directory over HTTP.',
  configKeys: [],
  async run() {
    throw new UsageError('serve is not built yet (issue #5); only --help works for now');
  },
};
