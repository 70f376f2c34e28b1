import { createHash, type Hash } from 'node:crypto';
import { open, rename, rm, writeFile, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { CONTENT_SHA256_COLUMN, csvString, DATASET_ROW_COLUMNS, type SplitFiles, SPLIT_NAMES, type SplitName } from '@imgpipe/kit';
import { writeAll } from './decode-pass.js';
import type { PrepItem } from './input.js';
import { withFileErrors } from '@imgpipe/kit';

interface SplitOutput {
  handle: FileHandle;
  hash: Hash;
  bytes: number;
  rows: Record<string, unknown>[];
  perClass: number[];
}

/**
 * Appends images to the three split pixel files (sha256 computed on the way) and collects their CSV rows.
 * Pixel files are written as `<prefix><split>.u8` and get their final names in `finish`.
 */
export class SplitWriter {
  private readonly columns: string[];
  private readonly passThrough: string[];
  private readonly renamed: string[];

  private constructor(
    private readonly dir: string,
    private readonly prefix: string,
    private readonly outputs: Record<SplitName, SplitOutput>,
    inputColumns: readonly string[],
  ) {
    this.passThrough = inputColumns.filter((name) => name !== 'label' && name !== 'category');
    // An input column named like one of ours (index, source) keeps its value under input_<name>.
    const ours: readonly string[] = [...DATASET_ROW_COLUMNS, CONTENT_SHA256_COLUMN];
    this.renamed = this.passThrough.map((name) => (ours.includes(name) ? `input_${name}` : name));
    this.columns = [...ours, ...this.renamed];
  }

  static async open(dir: string, prefix: string, classes: readonly string[], inputColumns: readonly string[]): Promise<SplitWriter> {
    const outputs = {} as Record<SplitName, SplitOutput>;
    try {
      for (const split of SPLIT_NAMES) {
        outputs[split] = { handle: await open(join(dir, `${prefix}${split}.u8`), 'w'), hash: createHash('sha256'), bytes: 0, rows: [], perClass: classes.map(() => 0) };
      }
    } catch (error) {
      await Promise.all(Object.values(outputs).map((output) => output.handle.close()));
      throw error;
    }
    return new SplitWriter(dir, prefix, outputs, inputColumns);
  }

  pixelsPath(split: SplitName): string {
    return join(this.dir, `${this.prefix}${split}.u8`);
  }

  /** Append one image; returns its position in the split. */
  async append(split: SplitName, item: PrepItem, pixels: Uint8Array): Promise<number> {
    const output = this.outputs[split];
    output.hash.update(pixels);
    await withFileErrors(this.pixelsPath(split), () => writeAll(output.handle, pixels, output.bytes));
    output.bytes += pixels.length;
    const row: Record<string, unknown> = { index: output.rows.length, source: item.source, label: item.label, category: item.category, [CONTENT_SHA256_COLUMN]: item.contentSha256 ?? '' };
    this.passThrough.forEach((name, i) => {
      row[this.renamed[i]!] = item.row[name] ?? '';
    });
    output.rows.push(row);
    output.perClass[item.label]! += 1;
    return output.rows.length - 1;
  }

  async close(): Promise<void> {
    await Promise.all(SPLIT_NAMES.map((split) => this.outputs[split].handle.close().catch(() => undefined)));
  }

  /** Close, give the pixel files their final names, write <split>.csv; returns the manifest entries. */
  async finish(): Promise<Record<SplitName, SplitFiles>> {
    await this.close();
    const result = {} as Record<SplitName, SplitFiles>;
    for (const split of SPLIT_NAMES) {
      const output = this.outputs[split];
      if (this.prefix) await rename(this.pixelsPath(split), join(this.dir, `${split}.u8`));
      const text = await csvString(this.columns, output.rows);
      await withFileErrors(join(this.dir, `${split}.csv`), () => writeFile(join(this.dir, `${split}.csv`), text));
      result[split] = {
        count: output.rows.length,
        per_class: output.perClass,
        pixels: { file: `${split}.u8`, bytes: output.bytes, sha256: output.hash.digest('hex') },
        rows: { file: `${split}.csv`, sha256: createHash('sha256').update(text).digest('hex') },
      };
    }
    return result;
  }
}

export interface Placed {
  item: PrepItem;
  /** Where the decoding pass wrote the pixels. */
  from: { split: SplitName; position: number };
  /** The final split. */
  split: SplitName;
}

/**
 * Move images from the staged split files into a new writer's files when the final split differs from the staged
 * one (only after images were rejected during decoding, under --split-by random). Reads go forward through each
 * staged file; one image is in memory at a time.
 */
export async function regroup(staged: SplitWriter, target: SplitWriter, placed: readonly Placed[], imageBytes: number): Promise<void> {
  const handles = {} as Record<SplitName, FileHandle>;
  try {
    for (const split of SPLIT_NAMES) handles[split] = await open(staged.pixelsPath(split), 'r');
    const buffer = new Uint8Array(imageBytes);
    for (const split of SPLIT_NAMES) {
      for (const entry of placed) {
        if (entry.split !== split) continue;
        let offset = 0;
        while (offset < imageBytes) {
          const { bytesRead } = await handles[entry.from.split].read(buffer, offset, imageBytes - offset, entry.from.position * imageBytes + offset);
          if (bytesRead === 0) throw new Error(`${staged.pixelsPath(entry.from.split)}: ended early`);
          offset += bytesRead;
        }
        await target.append(split, entry.item, buffer);
      }
    }
  } finally {
    await Promise.all(Object.values(handles).map((handle) => handle.close()));
  }
  for (const split of SPLIT_NAMES) await rm(staged.pixelsPath(split), { force: true });
}
