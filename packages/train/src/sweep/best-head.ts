import { readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { FailureError, replaceDirectory, tempPathFor, trackTemp, untrackTemp, writeJsonAtomic, type Logger, type TrialRecord } from '@imgpipe/kit';
import { fileSaveHandler, type Tf } from '@imgpipe/engines';
import type { Trial } from './sweep.js';
import { runTrial, type LayersModelLike, type TrialFeatures } from './trial.js';

/** The best head so far, kept in the run directory until the model is written. */
export const BEST_HEAD = '.best-head';

/** The best head so far, in <run>/.best-head (replaced atomically), with the trial it belongs to. */
export function saveBestHead(runDir: string, model: LayersModelLike, record: TrialRecord): Promise<void> {
  return saveHeadDir(join(runDir, BEST_HEAD), model, record);
}

/** A trained head as a TF.js model directory (plus trial.json), replaced atomically. */
export async function saveHeadDir(final: string, model: LayersModelLike, record: TrialRecord): Promise<void> {
  const temp = tempPathFor(final);
  trackTemp(temp); // removed if a signal stops the process while the head is written
  try {
    await model.save(fileSaveHandler(temp));
    await writeJsonAtomic(join(temp, 'trial.json'), { trial: record.trial, val_accuracy: record.val_accuracy, val_loss: record.val_loss });
    await replaceDirectory(temp, final);
  } catch (error) {
    await rm(temp, { recursive: true, force: true });
    throw error;
  } finally {
    untrackTemp(temp);
  }
}

/** The best head is on disk unless the process died between saving a head and logging its trial: retrain it. */
export async function ensureBestHead(
  tf: Tf,
  features: TrialFeatures,
  run: { runDir: string; winner: TrialRecord; trial: Trial; patience: number | undefined; log: Logger },
): Promise<void> {
  const { runDir, winner } = run;
  const savedId = await readFile(join(runDir, BEST_HEAD, 'trial.json'), 'utf8').then(
    (t) => (JSON.parse(t) as { trial: string }).trial,
    () => undefined,
  );
  if (savedId === winner.trial) return;
  run.log.info(`retraining ${winner.trial} to save its head (same seed, same weights)`);
  const again = await runTrial(tf, features, run.trial, {
    ...(run.patience !== undefined ? { patience: run.patience } : {}),
    keep: (record, model) => saveBestHead(runDir, model(), record),
  });
  if (again.status !== 'ok') throw new FailureError(`retraining ${winner.trial} failed: ${again.reason}`);
}
