import { open, rm, type FileHandle } from 'node:fs/promises';
import { CONTENT_SHA256_COLUMN, DATASET_ROW_COLUMNS, SplitFilesWriter, SPLIT_NAMES, type SplitFiles, type SplitName } from '@imgpipe/kit';
import type { PrepItem } from './input.js';

/**
 * The split files of a dataset being built (written through kit's SplitFilesWriter): each image's row holds our
 * columns, then the input row's other columns. Pixel files are written as `<prefix><split>.u8` and get their final
 * names in `finish`.
 */
export class SplitWriter {
  private constructor(
    private readonly files: SplitFilesWriter,
    private readonly passThrough: readonly string[],
    private readonly renamed: readonly string[],
  ) {}

  static async open(dir: string, prefix: string, classes: readonly string[], inputColumns: readonly string[]): Promise<SplitWriter> {
    const passThrough = inputColumns.filter((name) => name !== 'label' && name !== 'category');
    // An input column named like one of ours (index, source) keeps its value under input_<name>.
    const ours: readonly string[] = [...DATASET_ROW_COLUMNS, CONTENT_SHA256_COLUMN];
    const renamed = passThrough.map((name) => (ours.includes(name) ? `input_${name}` : name));
    const files = await SplitFilesWriter.open(dir, { classes, columns: [...ours, ...renamed], prefix });
    return new SplitWriter(files, passThrough, renamed);
  }

  pixelsPath(split: SplitName): string {
    return this.files.pixelsPath(split);
  }

  /** Append one image; returns its position in the split. */
  append(split: SplitName, item: PrepItem, pixels: Uint8Array): Promise<number> {
    const row: Record<string, unknown> & { source: string; label: number; category: string } = {
      source: item.source,
      label: item.label,
      category: item.category,
      [CONTENT_SHA256_COLUMN]: item.contentSha256 ?? '',
    };
    this.passThrough.forEach((name, i) => {
      row[this.renamed[i]!] = item.row[name] ?? '';
    });
    return this.files.append(split, pixels, row);
  }

  close(): Promise<void> {
    return this.files.close();
  }

  /** Close, give the pixel files their final names, write <split>.csv; returns the manifest entries. */
  finish(): Promise<Record<SplitName, SplitFiles>> {
    return this.files.finish();
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
