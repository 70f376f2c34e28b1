import { join } from 'node:path';
import { hashBackboneSpec } from '@imgpipe/engines';
import { InputError, openDataset, type Dataset } from '@imgpipe/kit';
import { PLAN_FILE, type RunPlan } from './task-plan.js';

/**
 * Every task checks the plan's inputs by content before it works: tasks run minutes or days apart on other
 * machines, and a dataset rebuilt or a backbone file replaced in between would mix features of two inputs into one
 * model. Returns the opened dataset; a changed input is an InputError naming it.
 */
export async function verifyPlanInputs(runDir: string, plan: RunPlan): Promise<Dataset> {
  const { options, inputs } = plan;
  const again = `the run's tasks would mix features of both. Restore it, or plan a new run (train --task plan with another --run-id)`;
  const dataset = await openDataset(options.dataDir);
  if (dataset.manifestSha256 !== inputs.dataset_manifest_sha256) {
    throw new InputError(
      `${join(runDir, PLAN_FILE)}: the dataset ${options.dataDir} changed since the run was planned (manifest.json sha256 ${inputs.dataset_manifest_sha256.slice(0, 12)}… -> ${dataset.manifestSha256.slice(0, 12)}…: rebuilt, resplit or resized?); ${again}`,
    );
  }
  const backbone = await hashBackboneSpec(options.backbone, options.cacheDir ? { cacheDir: options.cacheDir } : {});
  if (backbone !== inputs.backbone_sha256) {
    throw new InputError(
      `${join(runDir, PLAN_FILE)}: the backbone ${options.backbone} changed since the run was planned (sha256 of its files ${inputs.backbone_sha256.slice(0, 12)}… -> ${backbone.slice(0, 12)}…: replaced in place?); ${again}`,
    );
  }
  return dataset;
}
