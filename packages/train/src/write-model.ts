import { fileLoadHandler, saveModelDir, type Tf } from '@imgpipe/engines';
import type { BackboneInfo, DatasetManifest, Logger, ModelCard, TrialRecord } from '@imgpipe/kit';
import type { FineTuneRecord } from './fine-tune/fine-tune-step.js';

/** What the model directory is written from: the best trial, its dataset, and the backbone and head files to copy. */
interface ModelSource {
  /** train --augment: recorded in the card. */
  augment?: string;
  winner: TrialRecord;
  manifest: DatasetManifest;
  datasetDir: string;
  manifestSha256: string;
  backboneInfo: BackboneInfo;
  backboneFiles: string[];
  versions: Record<string, string>;
  headModelJson: string;
  fineTune?: FineTuneRecord;
  /** Where a backbone without an ONNX form is reported (model.onnx is then not written). */
  log?: Logger;
}

/** The model directory (card.json, backbone/, head/, model.onnx) of the best trial, or of its fine-tuned model when that was kept. */
export async function writeModel(tf: Tf, modelDir: string, context: ModelSource): Promise<void> {
  const { winner, manifest, backboneInfo } = context;
  const tuned = context.fineTune?.kept === 'fine-tuned' ? context.fineTune.after : undefined;
  const head = await tf.loadLayersModel(fileLoadHandler(tf.io, context.headModelJson));
  const card: ModelCard = {
    format: 'imgpipe-model/1',
    labels: manifest.classes,
    input: { size: manifest.image_size, channels: 3, fit: manifest.fit },
    preprocess: backboneInfo.preprocess,
    backbone: { ...backboneInfo, path: '' },
    head: {
      path: 'head/model.json',
      layer_size: winner.params.layer_size,
      dropout: winner.params.dropout,
      lr: winner.params.lr,
      epochs: winner.params.epochs,
      batch_size: winner.params.batch_size,
    },
    metrics: {
      train_loss: tuned?.train_loss ?? winner.train_loss,
      train_accuracy: tuned?.train_accuracy ?? winner.train_accuracy,
      val_loss: tuned?.val_loss ?? winner.val_loss,
      val_accuracy: tuned?.val_accuracy ?? winner.val_accuracy,
      epochs_run: winner.epochs_run,
      best_epoch: winner.best_epoch,
    },
    dataset: { manifest_sha256: context.manifestSha256, path: context.datasetDir },
    created: new Date().toISOString(),
    versions: context.versions,
    trial: winner.trial,
    seed: winner.seed,
    augment: context.augment ?? 'none',
    ...(context.fineTune ? { fine_tune: context.fineTune } : {}),
  };
  try {
    await saveModelDir(modelDir, { card, backboneFiles: context.backboneFiles, head, ...(context.log ? { log: context.log } : {}) });
  } finally {
    head.dispose();
  }
}
