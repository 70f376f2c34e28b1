import { createHash, type Hash } from 'node:crypto';
import { writeSync } from 'node:fs';
import { open, rename, writeFile, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { csvString, csvText, type CsvText } from './csv.js';
import { MANIFEST_FILE, REJECTED_FILE, SPLIT_NAMES, type DatasetManifest, type SplitFiles, type SplitName } from './dataset.js';
import { withFileErrors } from './file-errors.js';

/**
 * The writing half of the dataset directory (dataset.ts reads it): <split>.u8 (the pixels, uint8 NHWC, one image
 * after another) and <split>.csv (one row per image, in the same order) for each split, then manifest.json, which
 * lists them with their sizes and sha256. prep-data writes datasets through it, and so do the tests' synthetic ones.
 */
const splitPixelsFile = (split: SplitName): string => `${split}.u8`;
const splitRowsFile = (split: SplitName): string => `${split}.csv`;
/** Every file a dataset directory holds. */
export const DATASET_FILES: readonly string[] = [
  MANIFEST_FILE,
  REJECTED_FILE,
  ...SPLIT_NAMES.flatMap((split) => [splitPixelsFile(split), splitRowsFile(split)]),
];

/** One row of a <split>.csv before its position is known: `index` is added on append. */
interface SplitRowInput {
  source: string;
  label: number;
  category: string;
  [column: string]: unknown;
}

interface SplitOutput {
  handle: FileHandle;
  hash: Hash;
  bytes: number;
  /** Bytes written when the last early flush started, and that flush while it runs (see EARLY_FLUSH_BYTES). */
  flushedAt: number;
  flushing: Promise<void> | undefined;
  count: number;
  /** Rows not yet added to `csv`: they are formatted CSV_ROWS_AT_ONCE at a time, as images arrive. */
  rows: Record<string, unknown>[];
  csv: CsvText;
  perClass: number[];
}

/** Rows formatted at once into a split's CSV: the file is then mostly formatted when the last image arrives. */
const CSV_ROWS_AT_ONCE = 256;

/**
 * Every this many bytes a pixel file's data so far is flushed to disk in the background (fdatasync on libuv's pool),
 * so that the fsync before the directory is renamed into place finds little left to write: measured, that final
 * fsync otherwise held prep-data idle for a tenth of its wall time.
 */
const EARLY_FLUSH_BYTES = 32 * 1024 * 1024;

/**
 * On the calling thread: an image is a few hundred kilobytes into the page cache, where a hop to libuv's pool and back
 * costs more than the write (measured in prep-data's profile).
 */
function writeAll(handle: FileHandle, data: Uint8Array, position: number): void {
  let offset = 0;
  while (offset < data.length) offset += writeSync(handle.fd, data, offset, data.length - offset, position + offset);
}

/**
 * Appends images to the three split pixel files (sha256 computed on the way) and collects their CSV rows. Pixel
 * files are written as `<prefix><split>.u8` and get their final names in `finish`.
 */
export class SplitFilesWriter {
  private constructor(
    private readonly dir: string,
    private readonly prefix: string,
    private readonly outputs: Record<SplitName, SplitOutput>,
  ) {}

  /** `columns`: the CSV's columns in order, DATASET_ROW_COLUMNS first. */
  static async open(dir: string, options: { classes: readonly string[]; columns: readonly string[]; prefix?: string }): Promise<SplitFilesWriter> {
    const prefix = options.prefix ?? '';
    const outputs = {} as Record<SplitName, SplitOutput>;
    try {
      for (const split of SPLIT_NAMES) {
        outputs[split] = {
          handle: await open(join(dir, `${prefix}${splitPixelsFile(split)}`), 'w'),
          hash: createHash('sha256'),
          bytes: 0,
          flushedAt: 0,
          flushing: undefined,
          count: 0,
          rows: [],
          csv: await csvText(options.columns),
          perClass: options.classes.map(() => 0),
        };
      }
    } catch (error) {
      await Promise.all(Object.values(outputs).map((output) => output.handle.close()));
      throw error;
    }
    return new SplitFilesWriter(dir, prefix, outputs);
  }

  pixelsPath(split: SplitName): string {
    return join(this.dir, `${this.prefix}${splitPixelsFile(split)}`);
  }

  /** Append one image and its row, written before this returns (so `pixels` may be reused); its position in the split. */
  async append(split: SplitName, pixels: Uint8Array, row: SplitRowInput): Promise<number> {
    const output = this.outputs[split];
    output.hash.update(pixels);
    await withFileErrors(this.pixelsPath(split), async () => writeAll(output.handle, pixels, output.bytes));
    output.bytes += pixels.length;
    if (output.bytes - output.flushedAt >= EARLY_FLUSH_BYTES && !output.flushing) {
      output.flushedAt = output.bytes;
      // A failure here shows again in the fsync that makes the files durable, which reports it.
      output.flushing = output.handle
        .datasync()
        .catch(() => undefined)
        .finally(() => {
          output.flushing = undefined;
        });
    }
    const index = output.count++;
    output.rows.push({ index, ...row });
    if (output.rows.length >= CSV_ROWS_AT_ONCE) {
      output.csv.add(output.rows);
      output.rows = [];
    }
    output.perClass[row.label]! += 1;
    return index;
  }

  async close(): Promise<void> {
    await Promise.all(SPLIT_NAMES.map((split) => this.outputs[split].flushing));
    await Promise.all(SPLIT_NAMES.map((split) => this.outputs[split].handle.close().catch(() => undefined)));
  }

  /** Close, give the pixel files their final names, write <split>.csv; returns the manifest's `splits`. */
  async finish(): Promise<Record<SplitName, SplitFiles>> {
    await this.close();
    const result = {} as Record<SplitName, SplitFiles>;
    for (const split of SPLIT_NAMES) {
      const output = this.outputs[split];
      const pixelsFile = splitPixelsFile(split);
      const rowsFile = splitRowsFile(split);
      if (this.prefix) await rename(this.pixelsPath(split), join(this.dir, pixelsFile));
      output.csv.add(output.rows);
      output.rows = [];
      const text = output.csv.text();
      await withFileErrors(join(this.dir, rowsFile), () => writeFile(join(this.dir, rowsFile), text));
      result[split] = {
        count: output.count,
        per_class: output.perClass,
        pixels: { file: pixelsFile, bytes: output.bytes, sha256: output.hash.digest('hex') },
        rows: { file: rowsFile, sha256: createHash('sha256').update(text).digest('hex') },
      };
    }
    return result;
  }
}

/** manifest.json, written last: what makes the directory a dataset. */
export async function writeManifest(dir: string, manifest: DatasetManifest): Promise<void> {
  const path = join(dir, MANIFEST_FILE);
  await withFileErrors(path, () => writeFile(path, `${JSON.stringify(manifest, null, 2)}\n`));
}

/** rejected.csv: the images left out and why. */
export async function writeRejected(dir: string, columns: readonly string[], rows: readonly object[]): Promise<void> {
  const path = join(dir, REJECTED_FILE);
  const text = await csvString(columns, rows as readonly Record<string, unknown>[], { forSpreadsheets: true });
  await withFileErrors(path, () => writeFile(path, text));
}
