import { open, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { readCsvRows, type CsvRow } from './csv.js';
import { InputError } from './errors.js';
import { sha256 } from './files.js';

/** The dataset directory written by prep-data and read by train, eval-model and the feature cache. */
/** train/val/test: exact stratified counts (random) or per-key hashing that is stable when rows are added. */
export type SplitName = 'train' | 'val' | 'test';
export const SPLIT_NAMES: readonly SplitName[] = ['train', 'val', 'test'];
export type SplitMethod = 'random' | 'hash';
export type SplitFractions = Record<SplitName, number>;
export type Fit = 'fill' | 'cover';

export const DATASET_FORMAT = 'imgpipe-dataset/1';
export const MANIFEST_FILE = 'manifest.json';
export const REJECTED_FILE = 'rejected.csv';
/** The first columns of every <split>.csv; the input row's other columns follow. */
export const DATASET_ROW_COLUMNS = ['index', 'source', 'label', 'category'] as const;
/** Written after those by prep-data: the sha256 of the image file's bytes (label decisions are matched on it). */
export const CONTENT_SHA256_COLUMN = 'content_sha256';

export interface SplitFiles {
  count: number;
  per_class: number[];
  pixels: { file: string; bytes: number; sha256: string };
  rows: { file: string; sha256: string };
}

export interface DatasetManifest {
  format: typeof DATASET_FORMAT;
  /** Class names; the index is the label. */
  classes: string[];
  image_size: number;
  channels: 3;
  layout: 'NHWC';
  dtype: 'uint8';
  fit: Fit;
  split: { method: SplitMethod; seed: number; fractions: Record<SplitName, number> };
  splits: Record<SplitName, SplitFiles>;
  source_csv_sha256: string;
  options_sha256: string;
  /** sha256 over each kept image's source and content sha256: prep-data's up-to-date check covers the pixels' source. */
  images_sha256?: string;
  rejected: number;
  created: string;
  versions: Record<string, string>;
  /** Extensions: how pixels were made (decoder, colour handling, limits) and where the CSV came from. */
  preprocessing?: Record<string, string | number | boolean>;
  source_csv?: string;
  rejected_file?: string;
  /** Review decisions applied (prep-data --decisions): the file's sha256 and what it changed. */
  review?: { decisions_file: string; decisions_sha256: string; dropped: number; relabelled: number; kept: number; unmatched: number };
}

export interface DatasetRow {
  index: number;
  source: string;
  label: number;
  category: string;
  /** Every column of the split CSV as written (including the input row's pass-through columns). */
  fields: CsvRow;
}

export interface Dataset {
  dir: string;
  manifest: DatasetManifest;
  /** sha256 of manifest.json's bytes: the dataset's identity for caches and run.json. */
  manifestSha256: string;
  rows(split: SplitName): Promise<DatasetRow[]>;
  labels(split: SplitName): Promise<Int32Array>;
  /** `count` images from `start`: count*size*size*3 bytes. */
  readPixels(split: SplitName, start: number, count: number): Promise<Uint8Array>;
  pixelsPath(split: SplitName): string;
}

/** Open a dataset directory; an InputError names the file when it is missing, corrupt or inconsistent. */
export async function openDataset(dir: string): Promise<Dataset> {
  const manifestPath = join(dir, MANIFEST_FILE);
  let text: string;
  try {
    text = await readFile(manifestPath, 'utf8');
  } catch (error) {
    throw new InputError(
      `${manifestPath}: cannot read the dataset manifest (${(error as NodeJS.ErrnoException).code ?? error}); run prep-data --out ${dir} first`,
      { cause: error },
    );
  }
  let manifest: DatasetManifest;
  try {
    manifest = JSON.parse(text) as DatasetManifest;
  } catch (error) {
    throw new InputError(`${manifestPath}: not valid JSON (${(error as Error).message}); rebuild it with prep-data --force`, { cause: error });
  }
  validateManifest(manifest, manifestPath);
  const imageBytes = manifest.image_size * manifest.image_size * manifest.channels;
  for (const split of SPLIT_NAMES) {
    const entry = manifest.splits[split];
    const path = join(dir, entry.pixels.file);
    const size = await stat(path).then(
      (s) => s.size,
      () => -1,
    );
    if (size < 0) throw new InputError(`${path}: missing (listed in ${manifestPath}); rebuild with prep-data --force`);
    if (size !== entry.pixels.bytes || size !== entry.count * imageBytes) {
      throw new InputError(
        `${path}: ${size} bytes, expected ${entry.count} images x ${imageBytes} = ${entry.count * imageBytes}; rebuild with prep-data --force`,
      );
    }
  }

  const rowCache = new Map<SplitName, Promise<DatasetRow[]>>();
  const rows = (split: SplitName) => {
    let cached = rowCache.get(split);
    if (!cached) {
      cached = readRows(dir, manifest, split);
      cached.catch(() => rowCache.delete(split));
      rowCache.set(split, cached);
    }
    return cached;
  };
  return {
    dir,
    manifest,
    manifestSha256: sha256(text),
    rows,
    async labels(split) {
      return Int32Array.from((await rows(split)).map((row) => row.label));
    },
    async readPixels(split, start, count) {
      const total = manifest.splits[split].count;
      if (!Number.isInteger(start) || !Number.isInteger(count) || start < 0 || count < 0 || start + count > total) {
        throw new RangeError(`readPixels(${split}, ${start}, ${count}): out of range (the split has ${total} images)`);
      }
      const out = new Uint8Array(count * imageBytes);
      if (count === 0) return out;
      const handle = await open(join(dir, manifest.splits[split].pixels.file), 'r');
      try {
        let offset = 0;
        while (offset < out.length) {
          const { bytesRead } = await handle.read(out, offset, out.length - offset, start * imageBytes + offset);
          if (bytesRead === 0) throw new InputError(`${join(dir, manifest.splits[split].pixels.file)}: ended early; rebuild with prep-data --force`);
          offset += bytesRead;
        }
      } finally {
        await handle.close();
      }
      return out;
    },
    pixelsPath: (split) => join(dir, manifest.splits[split].pixels.file),
  };
}

function validateManifest(manifest: DatasetManifest, path: string): void {
  const problems: string[] = [];
  if (manifest?.format !== DATASET_FORMAT) problems.push(`format is ${JSON.stringify(manifest?.format)}, expected '${DATASET_FORMAT}'`);
  else {
    if (!Array.isArray(manifest.classes) || manifest.classes.length === 0) problems.push('classes must be a non-empty list');
    if (!Number.isInteger(manifest.image_size) || manifest.image_size <= 0) problems.push('image_size must be a positive integer');
    if (manifest.channels !== 3 || manifest.layout !== 'NHWC' || manifest.dtype !== 'uint8') problems.push('only 3-channel uint8 NHWC is supported');
    for (const split of SPLIT_NAMES) {
      const entry = manifest.splits?.[split];
      if (!entry || !Number.isInteger(entry.count) || !entry.pixels?.file || !entry.rows?.file) problems.push(`splits.${split} is incomplete`);
    }
  }
  if (problems.length > 0) throw new InputError(`${path}: not a usable dataset manifest: ${problems.join('; ')}`);
}

async function readRows(dir: string, manifest: DatasetManifest, split: SplitName): Promise<DatasetRow[]> {
  const path = join(dir, manifest.splits[split].rows.file);
  let text: Buffer;
  try {
    text = await readFile(path);
  } catch (error) {
    throw new InputError(`${path}: cannot read (${(error as NodeJS.ErrnoException).code ?? error}); rebuild with prep-data --force`, {
      cause: error,
    });
  }
  const expected = manifest.splits[split].rows.sha256;
  if (expected && sha256(text) !== expected) {
    throw new InputError(
      `${path}: sha256 ${sha256(text)} does not match ${expected} in the dataset manifest; the file changed after prep-data wrote it; rebuild with prep-data --force`,
    );
  }
  const { rows } = await readCsvRows(Readable.from([text]), { source: path, required: DATASET_ROW_COLUMNS });
  if (rows.length !== manifest.splits[split].count) {
    throw new InputError(`${path}: ${rows.length} rows, but the manifest says ${manifest.splits[split].count}; rebuild with prep-data --force`);
  }
  return rows.map((fields, position) => {
    const label = Number(fields.label);
    if (!Number.isInteger(label) || label < 0 || label >= manifest.classes.length) {
      throw new InputError(`${path}: row ${position + 1}: label ${JSON.stringify(fields.label)} is not one of 0..${manifest.classes.length - 1}`);
    }
    return { index: Number(fields.index), source: fields.source ?? '', label, category: fields.category ?? '', fields };
  });
}
