import { resolve } from 'node:path';
import { Readable } from 'node:stream';
import { InputError, readCsv, type CsvRow } from '@imgpipe/kit';

/** The images CSV as prep-data needs it: one item per row, the classes, and the rows already known to be unusable. */
export const REQUIRED_COLUMNS = ['category', 'label', 'local_image'] as const;

export interface PrepItem {
  /** 1-based line of the CSV (the header is line 1). */
  line: number;
  row: CsvRow;
  /** The image's identity: s3://bucket/key when the row has them, else local_image as written. */
  source: string;
  /** local_image resolved against the working directory. */
  path: string;
  label: number;
  category: string;
}

export interface EarlyReject {
  item: PrepItem;
  reason: 'missing' | 'duplicate';
  detail: string;
}

export interface PrepInput {
  columns: string[];
  classes: string[];
  /** Rows to decode, in input order. */
  items: PrepItem[];
  /** Rows dropped before decoding: empty local_image, or an image listed twice (the later row is dropped). */
  early: EarlyReject[];
}

const SHOWN = 8;

/**
 * Parse and check the CSV. Problems with the table itself (a malformed line, a label that is not an integer,
 * a label with two names, a gap in the labels) are InputErrors that name the lines; nothing is guessed.
 */
export async function parsePrepInput(text: Buffer, source: string, cwd: string): Promise<PrepInput> {
  const { columns, records } = await readCsv(Readable.from([text]), { source, required: REQUIRED_COLUMNS });
  const malformed: string[] = [];
  const badLabels: number[] = [];
  const noCategory: number[] = [];
  const items: PrepItem[] = [];
  const early: EarlyReject[] = [];
  for await (const record of records) {
    if (record.error !== undefined) {
      malformed.push(`line ${record.line}: ${record.error}`);
      continue;
    }
    const { row, line } = record;
    const labelText = (row.label ?? '').trim();
    const label = /^\d+$/.test(labelText) ? Number(labelText) : NaN;
    if (!Number.isSafeInteger(label)) badLabels.push(line);
    const category = (row.category ?? '').trim();
    if (category === '') noCategory.push(line);
    const local = row.local_image ?? '';
    const bucket = row.bucket ?? '';
    const key = row.s3_image ?? '';
    items.push({ line, row, source: bucket && key ? `s3://${bucket}/${key}` : local, path: local ? resolve(cwd, local) : '', label, category });
  }
  const problems: string[] = [];
  if (malformed.length > 0) problems.push(`malformed lines: ${list(malformed)}`);
  if (badLabels.length > 0) problems.push(`'label' must be a non-negative integer on ${lines(badLabels)}`);
  if (noCategory.length > 0) problems.push(`'category' is empty on ${lines(noCategory)}`);
  if (problems.length === 0) problems.push(...classProblems(items));
  if (problems.length > 0) throw new InputError(`${source}: ${problems.join('; ')}`);
  if (items.length === 0) throw new InputError(`${source}: no rows after the header; nothing to prepare`);

  const names = new Map<number, string>();
  for (const item of items) if (!names.has(item.label)) names.set(item.label, item.category);
  const classes = [...names.keys()].sort((a, b) => a - b).map((label) => names.get(label)!);

  const seen = new Map<string, number>();
  const kept: PrepItem[] = [];
  for (const item of items) {
    if (item.path === '') {
      early.push({ item, reason: 'missing', detail: 'local_image is empty (download the image first with download-s3)' });
      continue;
    }
    const first = seen.get(item.source);
    if (first !== undefined) {
      early.push({ item, reason: 'duplicate', detail: `the same image as line ${first}; kept there so it is in one split only` });
      continue;
    }
    seen.set(item.source, item.line);
    kept.push(item);
  }
  return { columns, classes, items: kept, early };
}

/** Each label one name, labels 0..N-1 without gaps. */
function classProblems(items: PrepItem[]): string[] {
  const problems: string[] = [];
  const byLabel = new Map<number, Map<string, number[]>>();
  for (const item of items) {
    let names = byLabel.get(item.label);
    if (!names) byLabel.set(item.label, (names = new Map()));
    let at = names.get(item.category);
    if (!at) names.set(item.category, (at = []));
    at.push(item.line);
  }
  for (const [label, names] of [...byLabel].sort((a, b) => a[0] - b[0])) {
    if (names.size > 1) {
      const described = [...names].map(([name, at]) => `'${name}' (${lines(at)})`).join(' and ');
      problems.push(`label ${label} has ${names.size} names: ${described}; use one category per label`);
    }
  }
  const labels = [...byLabel.keys()].sort((a, b) => a - b);
  const max = labels.at(-1) ?? -1;
  const missing = Array.from({ length: max + 1 }, (_, label) => label).filter((label) => !byLabel.has(label));
  if (missing.length > 0) {
    const after = labels.filter((label) => label > missing[0]!);
    const rowsAfter = after.flatMap((label) => [...byLabel.get(label)!.values()].flat());
    problems.push(
      `labels must run 0..N-1 without gaps, but no row has label ${missing.join(', ')} ` +
        `(labels seen: ${labels.join(', ')}; rows with higher labels: ${lines(rowsAfter)}); renumber the labels`,
    );
  }
  return problems;
}

function lines(numbers: number[]): string {
  const shown = numbers.slice(0, SHOWN).join(', ');
  return `line${numbers.length > 1 ? 's' : ''} ${shown}${numbers.length > SHOWN ? ` and ${numbers.length - SHOWN} more` : ''}`;
}

function list(items: string[]): string {
  return items.slice(0, SHOWN).join('; ') + (items.length > SHOWN ? `; and ${items.length - SHOWN} more` : '');
}
