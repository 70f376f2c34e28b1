import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { InputError } from './errors.js';
import { checkModelFiles, type ModelFileEntry } from './model-files.js';

/**
 * The model directory: card.json, backbone/ (an ONNX file or a TF.js model), head/ (a TF.js layers model) and
 * model.onnx (the whole classifier in one ONNX file, when the backbone has an ONNX form).
 * train writes it, eval-model, serve and the upload snippet load it.
 */
export const MODEL_FORMAT = 'imgpipe-model/1';

export interface ModelCard {
  format: typeof MODEL_FORMAT;
  labels: string[];
  input: { size: number; channels: 3; fit: 'fill' | 'cover' };
  preprocess: PreprocessSpec;
  /** `path` is relative to the model directory, e.g. 'backbone/model.onnx' or 'backbone/model.json'. */
  backbone: BackboneInfo & { path: string };
  head: { path: 'head/model.json'; layer_size: number; dropout: number; lr: number; epochs: number; batch_size: number };
  /** The whole classifier in one ONNX file (absent in cards written before it, or where the backbone has no ONNX form). */
  onnx?: WholeModelInfo;
  /** val_accuracy, val_loss, train_loss, train_accuracy; eval-model adds test_*. */
  metrics: Record<string, number>;
  dataset: { manifest_sha256: string; path?: string };
  created: string;
  versions: Record<string, string>;
  /** Every file of the directory but card.json, with its size and sha256 (saveModelDir fills it; loaders refuse a card without). */
  files?: ModelFileEntry[];
  /** Anything else a tool records (trial id, run path). */
  [key: string]: unknown;
}

/** model.onnx as the card records it: uint8 RGB NHWC `input` [batch, size, size, 3] in, softmax `output` [batch, labels] out. */
export interface WholeModelInfo {
  path: 'model.onnx';
  input: 'pixels';
  output: 'probabilities';
  opset: number;
}

/** How uint8 RGB pixels become the model's float input: value = (pixel * scale - mean[c]) / std[c]. */
export interface PreprocessSpec {
  name: 'torch' | 'tf' | 'caffe' | 'efficientnet-lite' | 'none';
  scale: number;
  mean: [number, number, number];
  std: [number, number, number];
  /** Channel order the model expects; pixels on disk are always RGB. */
  channel_order: 'RGB' | 'BGR';
}

/** What a backbone is, recorded in the model card. */
export interface BackboneInfo {
  name: string;
  format: 'onnx' | 'tfjs-layers' | 'tfjs-graph';
  /** Where it came from: a built-in name's URL, a path or a URL. */
  source: string;
  /** sha256 of the model file (ONNX) or of model.json and its weight files in order (TF.js). */
  sha256: string;
  input_size: number;
  layout: 'NHWC' | 'NCHW';
  preprocess: PreprocessSpec;
  feature_layer: string;
  feature_dim: number;
  /** What runs it: ONNX Runtime or TF.js (absent in cards written before this was recorded). */
  engine?: 'onnxruntime' | 'tfjs';
  /** Set when the files are an ONNX conversion of a TF.js layers model; source_sha256 is that model's sha256. */
  converted_from?: 'tfjs-layers';
  source_sha256?: string;
}

export async function readModelCard(dir: string): Promise<ModelCard> {
  const path = join(dir, 'card.json');
  let card: ModelCard;
  try {
    card = JSON.parse(await readFile(path, 'utf8')) as ModelCard;
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw new InputError(
      code === 'ENOENT'
        ? `${path} not found: ${dir} is not a model directory (pass the run's model/ with --model)`
        : `${path}: not valid JSON (${(error as Error).message})`,
      { cause: error },
    );
  }
  const problems: string[] = [];
  if (card.format !== MODEL_FORMAT) problems.push(`format is ${JSON.stringify(card.format)}, expected '${MODEL_FORMAT}'`);
  if (!Array.isArray(card.labels) || card.labels.length < 2) problems.push('labels must list at least 2 classes');
  if (!card.input || !Number.isInteger(card.input.size) || card.input.size <= 0) problems.push('input.size must be a positive integer');
  if (!card.backbone || typeof card.backbone.path !== 'string') problems.push('backbone.path is missing');
  if (!card.head || typeof card.head.path !== 'string') problems.push('head.path is missing');
  if (!card.preprocess || typeof card.preprocess.name !== 'string') problems.push('preprocess is missing');
  if (problems.length) throw new InputError(`${path}: ${problems.join('; ')}`);
  return card;
}

/**
 * Read card.json and verify the directory as a whole: every file it lists, by size and sha256; no file missing,
 * added or behind a link; backbone, head and weight paths inside the directory and listed; the card's input size
 * the backbone's. Returns the card. InputError naming the file on any mismatch.
 */
export async function openModelDir(dir: string): Promise<ModelCard> {
  const card = await readModelCard(dir);
  const path = join(dir, 'card.json');
  if (card.backbone.input_size !== undefined && card.backbone.input_size !== card.input.size) {
    throw new InputError(
      `${path}: input.size is ${card.input.size} but the backbone was recorded with input_size ${card.backbone.input_size}; the card was edited or belongs to another model`,
    );
  }
  await checkModelFiles(dir, card);
  return card;
}
