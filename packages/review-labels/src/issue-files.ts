import { resolve } from 'node:path';
import { encodeView } from '@imgpipe/images';
import { CONTENT_SHA256_COLUMN, csvString, isRegularFile, sha256File, type Dataset, type DatasetRow, type SplitName } from '@imgpipe/kit';
import type { Issue } from './find-issues.js';
import type { PageItem } from './review-page.js';

export const ISSUES_FILE = 'label-issues.csv';
export const REVIEW_PAGE_FILE = 'label-review.html';

/** An image of the pooled dataset: its split, its row there and the row itself. */
export interface PooledRow {
  split: SplitName;
  /** Its position in the split (the order of the split's pixels). */
  position: number;
  row: DatasetRow;
}

/**
 * The sha256 of an image's file: the dataset row's content_sha256 (prep-data records it), else the file named by
 * its local_image read now (relative paths against `cwd`), else '' (the decision then falls back to its source).
 */
export async function contentSha256(row: DatasetRow, cwd: string): Promise<string> {
  const recorded = row.fields[CONTENT_SHA256_COLUMN];
  if (recorded) return recorded;
  const local = row.fields.local_image;
  if (!local) return '';
  const path = resolve(cwd, local);
  return (await isRegularFile(path)) ? sha256File(path).catch(() => '') : '';
}

function issueColumns(classes: readonly string[]): string[] {
  return [
    'rank',
    'image',
    'split',
    'index',
    'sha256',
    'given_label',
    'suggested_label',
    'kind',
    'score',
    ...classes.map((c) => `p_${c}`),
    'duplicate_of',
    'why',
  ];
}

/** label-issues.csv, most suspicious first. */
export function issuesCsv(
  issues: readonly Issue[],
  pooled: readonly PooledRow[],
  hashes: readonly string[],
  probs: Float32Array,
  classes: readonly string[],
): Promise<string> {
  const k = classes.length;
  const rows = issues.map((issue, i) => {
    const { split, row } = pooled[issue.row]!;
    const dup = issue.duplicateOf >= 0 ? pooled[issue.duplicateOf]! : undefined;
    const record: Record<string, unknown> = {
      rank: i + 1,
      image: row.source,
      split,
      index: row.index,
      sha256: hashes[i] ?? '',
      given_label: classes[row.label],
      suggested_label: issue.suggested >= 0 ? classes[issue.suggested] : '',
      kind: issue.kinds.join(';'),
      score: Number(issue.score.toPrecision(6)),
      duplicate_of: dup ? `${dup.split}:${dup.row.index} ${dup.row.source}` : '',
      why: issue.why,
    };
    classes.forEach((c, j) => {
      record[`p_${c}`] = Number(probs[issue.row * k + j]!.toPrecision(6));
    });
    return record;
  });
  return csvString(issueColumns(classes), rows);
}

/** A thumbnail of the dataset's pixels (what the model saw) as a JPEG data: URI. */
async function thumbnailUri(pixels: Uint8Array, size: number): Promise<string> {
  const jpeg = await encodeView({ data: Buffer.from(pixels.buffer, pixels.byteOffset, pixels.byteLength), width: size, height: size }, 'jpeg');
  return `data:image/jpeg;base64,${jpeg.toString('base64')}`;
}

/** The page's items for these issues (the first of label-issues.csv, in its order). */
export async function pageItems(
  issues: readonly Issue[],
  from: { dataset: Dataset; pooled: readonly PooledRow[]; hashes: readonly string[]; probs: Float32Array },
): Promise<PageItem[]> {
  const { dataset, pooled, hashes, probs } = from;
  const k = dataset.manifest.classes.length;
  const items: PageItem[] = [];
  for (const [i, issue] of issues.entries()) {
    const { split, position, row } = pooled[issue.row]!;
    items.push({
      rank: i + 1,
      thumbnail: await thumbnailUri(await dataset.readPixels(split, position, 1), dataset.manifest.image_size),
      source: row.source,
      split,
      sha256: hashes[i]!,
      given: row.label,
      suggested: issue.suggested,
      kinds: issue.kinds,
      why: issue.why,
      probabilities: Array.from(probs.subarray(issue.row * k, (issue.row + 1) * k)),
    });
  }
  return items;
}
