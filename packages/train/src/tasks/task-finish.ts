import { readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import {
  exists,
  FailureError,
  InputError,
  MODEL_DIR,
  readRunJson,
  TRIALS_CSV,
  writeTrialsJsonl,
  writeTrialTables,
  type Logger,
  type Pointer,
  type RunTimings,
  type TrialRecord,
} from '@imgpipe/kit';
import { backboneSourceSha256, loadTf } from '@imgpipe/engines';
import { openBackbone } from '../backbone-features.js';
import { finishRun } from '../finish-run.js';
import { runVersions, startedRunJson } from '../run-record.js';
import { shardTimingFile } from './task-extract.js';
import { verifyPlanInputs } from './task-inputs.js';
import { PLAN_FILE, type RunPlan } from './task-plan.js';
import { readTrialRecord, trialHeadDir } from './task-trial.js';
import type { TrainOptions } from '../train-options.js';
import { pickBest } from '../sweep/trial.js';
import { writeModel } from '../write-model.js';

async function extractionSeconds(runDir: string, shards: number): Promise<number> {
  let seconds = 0;
  for (let k = 0; k < shards; k++) {
    seconds += await readFile(shardTimingFile(runDir, k), 'utf8').then(
      (t) => (JSON.parse(t) as { seconds: number }).seconds,
      () => 0,
    );
  }
  return seconds;
}

/**
 * `train --task finish`: the trials' files gathered into trials.jsonl, trials.csv and results.csv, the best trial
 * (on validation, as the single-process train picks it) written as model/, run.json marked done.
 */
export async function finishTask(runDir: string, plan: RunPlan, log: Logger): Promise<Pointer> {
  const modelDir = join(runDir, MODEL_DIR);
  const pointer = { kind: 'run', path: runDir, best: modelDir };
  const current = await readRunJson(runDir);
  if (current?.status === 'done' && (await exists(join(modelDir, 'card.json')))) {
    log.info(`run ${runDir} is already finished; nothing to do`);
    return pointer;
  }
  const dataset = await verifyPlanInputs(runDir, plan);
  const records: TrialRecord[] = [];
  const missing: number[] = [];
  for (const trial of plan.trials) {
    const record = await readTrialRecord(runDir, trial);
    if (record) records.push(record);
    else missing.push(trial.index);
  }
  if (missing.length > 0) {
    throw new FailureError(
      `trials ${missing.join(',')} of ${runDir} are not done; run train --task trial --run ${runDir} --index K for each, then finish again`,
    );
  }
  const { options } = plan;
  const { tf, device, backend } = await loadTf(options.device, log);
  const backbone = await openBackbone(options, dataset.manifest.image_size, log);
  const { info: backboneInfo, files: backboneFiles } = backbone;
  await backbone.dispose();
  if (backboneSourceSha256(backboneInfo) !== plan.inputs.backbone_sha256) {
    throw new InputError(
      `${join(runDir, PLAN_FILE)}: the backbone ${options.backbone} changed since the run was planned (replaced while this task started?); plan a new run`,
    );
  }
  const versions = await runVersions(tf);
  const trainOptions: TrainOptions = { ...options, out: dirname(runDir) };
  const started = startedRunJson(trainOptions, {
    runDir,
    key: plan.key,
    previous: undefined,
    trials: plan.trials.length,
    device,
    backend,
    backbone,
    dataset,
    versions,
  });
  const run = { ...started, created: plan.created, mode: 'tasks' as const, shards: plan.shards.length };
  const headSeconds = records.reduce((sum, r) => sum + r.seconds, 0);
  const featureSeconds = await extractionSeconds(runDir, plan.shards.length);
  const timings: RunTimings = {
    feature_extraction_seconds: featureSeconds,
    features_from_cache: false,
    head_training_seconds: headSeconds,
    total_seconds: featureSeconds + headSeconds,
  };

  const failures = records.filter((r) => r.status === 'failed').length;
  const best = pickBest(records);
  await writeTrialsJsonl(runDir, records);
  await writeTrialTables(runDir, records, { backbone: backboneInfo.name, ...(best ? { bestTrial: best.trial } : {}) });
  await finishRun({
    runDir,
    run,
    records,
    timings,
    log,
    overBudget:
      options.maxFailedTrials !== undefined && failures > options.maxFailedTrials
        ? `${failures} trials failed, more than --max-failed-trials ${options.maxFailedTrials} (see ${join(runDir, TRIALS_CSV)})`
        : undefined,
    writeModel: async (winner) => {
      const headModelJson = join(trialHeadDir(runDir, plan.trials[winner.index]!), 'model.json');
      await writeModel(tf, modelDir, {
        winner,
        manifest: dataset.manifest,
        datasetDir: dataset.dir,
        manifestSha256: dataset.manifestSha256,
        backboneInfo,
        backboneFiles,
        versions,
        headModelJson,
        log,
      });
      return undefined;
    },
  });
  return pointer;
}
