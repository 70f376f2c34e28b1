import { UsageError, type ToolCli } from '@imgpipe/core';

export const evalModelCli: ToolCli = {
  name: 'eval-model',
  summary: "Evaluate a run's best model on the test split.",
  configKeys: [],
  async run() {
    throw new UsageError('eval-model is not built yet (issue #4); only --help works for now');
  },
};
