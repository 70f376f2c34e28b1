import { resolve } from 'node:path';
import { InputError, readCsvText } from '@imgpipe/kit';
import type { EarlyReject, PrepItem } from './prep-item.js';

export type { PrepItem } from './prep-item.js';

/** The images CSV as prep-data needs it: one item per row, the classes, and the rows already known to be unusable. */
const REQUIRED_COLUMNS = ['category', 'label', 'local_image'] as const;

interface PrepInput {
  columns: string[];
  classes: string[];
  /** Rows to decode, in input order (duplicates among them are found by the Deduper, dedupe.ts). */
  items: PrepItem[];
  /** Rows dropped before decoding: empty local_image (and, once dedupeItems ran, the later rows of an image listed twice). */
  early: EarlyReject[];
}

const SHOWN = 8;

/**
 * Parse and check the CSV. Problems with the table itself (a malformed line, a label that is not an integer,
 * a label with two names, a gap in the labels) are InputErrors that name the lines; nothing is guessed.
 */
export async function parsePrepInput(text: Buffer, source: string, cwd: string): Promise<PrepInput> {
  const { columns, records } = await readCsvText(text, { source, required: REQUIRED_COLUMNS });
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

  const listed: PrepItem[] = [];
  for (const item of items) {
    if (item.path === '') early.push({ item, reason: 'missing', detail: 'local_image is empty (download the image first with download-s3)' });
    else listed.push(item);
  }
  return { columns, classes, items: listed, early };
}

/** Each label one name, each name one label, at least two classes, labels 0..N-1 without gaps. */
function classProblems(items: PrepItem[]): string[] {
  const problems: string[] = [];
  const byLabel = new Map<number, Map<string, number[]>>();
  for (const item of items) {
    let names = byLabel.get(item.label);
    if (!names) {
      names = new Map();
      byLabel.set(item.label, names);
    }
    let at = names.get(item.category);
    if (!at) {
      at = [];
      names.set(item.category, at);
    }
    at.push(item.line);
  }
  for (const [label, names] of [...byLabel].sort((a, b) => a[0] - b[0])) {
    if (names.size > 1) {
      const described = [...names].map(([name, at]) => `'${name}' (${lines(at)})`).join(' and ');
      problems.push(`label ${label} has ${names.size} names: ${described}; use one category per label`);
    }
  }
  const byName = new Map<string, Map<number, number[]>>();
  for (const [label, names] of byLabel) {
    for (const [name, at] of names) {
      let labels = byName.get(name);
      if (!labels) {
        labels = new Map();
        byName.set(name, labels);
      }
      labels.set(label, at);
    }
  }
  for (const [name, labels] of byName) {
    if (labels.size > 1) {
      const described = [...labels]
        .sort((a, b) => a[0] - b[0])
        .map(([label, at]) => `label ${label} (${lines(at)})`)
        .join(' and ');
      problems.push(`category '${name}' names ${labels.size} labels: ${described}; give each label its own category`);
    }
  }
  // Only the distinct labels are looked at (never an array as long as the largest label): N labels must be 0..N-1.
  const labels = [...byLabel.keys()].sort((a, b) => a - b);
  if (labels.length === 1) {
    problems.push(`every row has label ${labels[0]} ('${[...byLabel.get(labels[0]!)!.keys()][0]}'): a classifier needs at least two classes`);
  }
  const missing = labels.map((_, label) => label).filter((label) => !byLabel.has(label));
  if (missing.length > 0) {
    const above = labels.filter((label) => label >= labels.length);
    const rowsAbove = above.flatMap((label) => [...byLabel.get(label)!.values()].flat()).sort((a, b) => a - b);
    problems.push(
      `labels must run 0..N-1 without gaps, but no row has label ${missing.slice(0, SHOWN).join(', ')}${missing.length > SHOWN ? ' ...' : ''} ` +
        `(labels seen: ${labels.slice(0, SHOWN).join(', ')}${labels.length > SHOWN ? ' ...' : ''}; rows with label ${above.slice(0, SHOWN).join(', ')}${above.length > SHOWN ? ' ...' : ''}: ${lines(rowsAbove)}); renumber the labels`,
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
