import { readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { exists, FailureError, InputError, writeFileAtomic, type Logger, type Pointer, type TrialRecord, readRunJson, TRIALS_JSONL, writeRunJson, writeTrialTables, type RunTimings } from '@imgpipe/kit';
import { backboneSourceSha256, loadTf } from '@imgpipe/engines';
import { openBackbone } from './backbone-features.js';
import { runVersions, startedRunJson, writeFailedRun } from './run-record.js';
import { describeParams } from './sweep.js';
import { shardTimingFile } from './task-extract.js';
import { verifyPlanInputs } from './task-inputs.js';
import { PLAN_FILE, type RunPlan } from './task-plan.js';
import { readTrialRecord, trialHeadDir } from './task-trial.js';
import type { TrainOptions } from './train-options.js';
import { pickBest } from './trial.js';
import { writeModel } from './write-model.js';

/** trials.jsonl as the single-process train leaves it: each trial's epoch lines, then its record. */
function trialLines(records: readonly TrialRecord[]): string {
  const lines: string[] = [];
  for (const record of records) {
    for (const epoch of record.history) lines.push(JSON.stringify({ event: 'epoch', trial: record.trial, ...epoch }));
    lines.push(JSON.stringify({ event: 'trial', ...record }));
  }
  return lines.map((l) => `${l}\n`).join('');
}

async function extractionSeconds(runDir: string, shards: number): Promise<number> {
  let seconds = 0;
  for (let k = 0; k < shards; k++) {
    seconds += await readFile(shardTimingFile(runDir, k), 'utf8').then((t) => (JSON.parse(t) as { seconds: number }).seconds, () => 0);
  }
  return seconds;
}

/**
 * `train --task finish`: the trials' files gathered into trials.jsonl, trials.csv and results.csv, the best trial
 * (on validation, as the single-process train picks it) written as model/, run.json marked done.
 */
export async function finishRun(runDir: string, plan: RunPlan, log: Logger): Promise<Pointer> {
  const modelDir = join(runDir, 'model');
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
    throw new FailureError(`trials ${missing.join(',')} of ${runDir} are not done; run train --task trial --run ${runDir} --index K for each, then finish again`);
  }
  const { options } = plan;
  const { tf, device, backend } = await loadTf(options.device, log);
  const backbone = await openBackbone(options, dataset.manifest.image_size, log);
  const { info: backboneInfo, files: backboneFiles } = backbone;
  await backbone.dispose();
  if (backboneSourceSha256(backboneInfo) !== plan.inputs.backbone_sha256) {
    throw new InputError(`${join(runDir, PLAN_FILE)}: the backbone ${options.backbone} changed since the run was planned (replaced while this task started?); plan a new run`);
  }
  const versions = await runVersions(tf);
  const trainOptions: TrainOptions = { ...options, out: dirname(runDir) };
  const started = startedRunJson(trainOptions, { runDir, key: plan.key, previous: undefined, trials: plan.trials.length, device, backend, backbone, dataset, versions });
  const run = { ...started, created: plan.created, mode: 'tasks' as const, shards: plan.shards.length };
  const headSeconds = records.reduce((sum, r) => sum + r.seconds, 0);
  const featureSeconds = await extractionSeconds(runDir, plan.shards.length);
  const timings: RunTimings = { feature_extraction_seconds: featureSeconds, features_from_cache: false, head_training_seconds: headSeconds, total_seconds: featureSeconds + headSeconds };

  const failures = records.filter((r) => r.status === 'failed').length;
  const winner = pickBest(records);
  await writeFileAtomic(join(runDir, TRIALS_JSONL), trialLines(records));
  await writeTrialTables(runDir, records, { backbone: backboneInfo.name, ...(winner ? { bestTrial: winner.trial } : {}) });
  if (options.maxFailedTrials !== undefined && failures > options.maxFailedTrials) {
    await writeFailedRun(runDir, run, timings);
    throw new FailureError(`${failures} trials failed, more than --max-failed-trials ${options.maxFailedTrials} (see ${join(runDir, 'trials.csv')})`);
  }
  if (!winner) {
    await writeFailedRun(runDir, run, timings);
    throw new FailureError(`all ${records.length} trials failed (first: ${records[0]?.reason}); see ${join(runDir, 'trials.csv')}`);
  }
  const headModelJson = join(trialHeadDir(runDir, plan.trials[winner.index]!), 'model.json');
  await writeModel(tf, modelDir, { winner, manifest: dataset.manifest, datasetDir: dataset.dir, manifestSha256: dataset.manifestSha256, backboneInfo, backboneFiles, versions, headModelJson, log });
  await writeRunJson(runDir, {
    ...run,
    status: 'done',
    timings,
    best: { trial: winner.trial, params: winner.params, val_accuracy: winner.val_accuracy, val_loss: winner.val_loss },
    failed_trials: failures,
    finished: new Date().toISOString(),
  });
  log.info(`best ${winner.trial} (${describeParams(winner.params)}): val_accuracy ${winner.val_accuracy.toFixed(4)} val_loss ${winner.val_loss.toFixed(4)}`);
  if (failures > 0) log.warn(`${failures} of ${records.length} trials failed; see ${join(runDir, 'trials.csv')}`);
  return pointer;
}
