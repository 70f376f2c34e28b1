import { join, resolve } from 'node:path';
import {
  InputError,
  MANIFEST_FILE,
  MODEL_DIR,
  openDataset,
  readModelCard,
  readRunJsonChecked,
  RUN_FILE,
  UsageError,
  type BackboneInfo,
  type Dataset,
  type Logger,
  type ModelCard,
  type TrialParams,
} from '@imgpipe/kit';

/** The hyper-parameters of one head, as train records them (run.json best.params). */
export type HeadParamsRecord = TrialParams;

/** What review-labels reads of a run directory: its dataset, backbone, best trial's head parameters and seed. */
export interface RunInputs {
  runDir: string;
  modelDir: string;
  dataset: Dataset;
  card: ModelCard;
  backbone: BackboneInfo & { spec?: string };
  /** The model's backbone was fine-tuned: features come from model/backbone, not from the run's --backbone. */
  fineTuned: boolean;
  params: HeadParamsRecord;
  bestTrial: string;
  seed: number;
}

function field<T>(value: unknown, ok: (v: unknown) => boolean, what: string, path: string): T {
  if (!ok(value)) throw new InputError(`${path}: ${what} is missing or not valid (${JSON.stringify(value)}); was the run finished by train?`);
  return value as T;
}

const isPositive = (v: unknown) => typeof v === 'number' && Number.isFinite(v) && v > 0;

/** Read run.json (a finished run), the model card and the dataset the run was trained on. */
export async function readRunInputs(runDirArg: string, dataDirArg: string | undefined, log: Logger): Promise<RunInputs> {
  const runDir = resolve(runDirArg);
  const runPath = join(runDir, RUN_FILE);
  const run = await readRunJsonChecked(runDir);
  if (!run) throw new UsageError(`${runPath} not found: --run ${runDirArg} is not a run directory (train --out writes one)`);
  if (run.status !== 'done')
    throw new InputError(`${runPath}: status is ${JSON.stringify(run.status)}, not "done"; finish the run first (rerun the same train command)`);
  const best = field<{ trial: string; params: Record<string, unknown> }>(
    run.best,
    (v) => typeof v === 'object' && v !== null && typeof (v as { trial?: unknown }).trial === 'string',
    'best',
    runPath,
  );
  const p: Partial<Record<keyof TrialParams, unknown>> = best.params ?? {};
  const params: HeadParamsRecord = {
    lr: field(p.lr, isPositive, 'best.params.lr', runPath),
    layer_size: field(p.layer_size, (v) => Number.isInteger(v) && (v as number) > 0, 'best.params.layer_size', runPath),
    dropout: field(p.dropout, (v) => typeof v === 'number' && v >= 0 && v < 1, 'best.params.dropout', runPath),
    batch_size: field(p.batch_size, (v) => Number.isInteger(v) && (v as number) > 0, 'best.params.batch_size', runPath),
    epochs: field(p.epochs, (v) => Number.isInteger(v) && (v as number) > 0, 'best.params.epochs', runPath),
  };
  const seed = field<number>(run.seed, (v) => Number.isInteger(v), 'seed', runPath);
  const backbone = field<BackboneInfo & { spec?: string }>(
    run.backbone,
    (v) => typeof v === 'object' && v !== null && typeof (v as { sha256?: unknown }).sha256 === 'string',
    'backbone',
    runPath,
  );
  const modelDir = join(runDir, MODEL_DIR);
  const card = await readModelCard(modelDir);
  const runDataset: { path?: unknown; manifest_sha256?: unknown } = run.dataset ?? {};
  const dataDir = dataDirArg ?? (typeof runDataset.path === 'string' ? runDataset.path : undefined);
  if (!dataDir) throw new UsageError(`${runPath} names no dataset; pass --data DIR`);
  const dataset = await openDataset(resolve(dataDir));
  if (dataset.manifestSha256 !== runDataset.manifest_sha256) {
    const message = `${join(dataDir, MANIFEST_FILE)} is not the dataset ${runPath} was trained on (manifest sha256 ${dataset.manifestSha256.slice(0, 12)}, run ${String(runDataset.manifest_sha256).slice(0, 12)})`;
    if (!dataDirArg)
      throw new InputError(`${message}: it was rebuilt since; retrain, or pass --data DIR to review it with this run's settings anyway`);
    log.warn(`${message}: reviewing it with this run's backbone and hyper-parameters`);
  }
  const fineTune = run.params?.fine_tune;
  return { runDir, modelDir, dataset, card, backbone, fineTuned: fineTune !== null && fineTune !== undefined, params, bestTrial: best.trial, seed };
}
