import { readCsvText } from './csv.js';
import { InputError } from './errors.js';

/**
 * label-decisions.csv: what a person decided about images review-labels listed (its page exports the file;
 * prep-data --decisions applies it). An image is named by the sha256 of its file's bytes, so a decision follows
 * the picture, not the path; `source` is kept for people and as a fallback when a row has no sha256.
 */
export const LABEL_DECISIONS_FILE = 'label-decisions.csv';
export const LABEL_DECISION_COLUMNS = ['sha256', 'action', 'label', 'source', 'split', 'given_label'] as const;
const LABEL_DECISION_ACTIONS = ['keep', 'relabel', 'drop'] as const;
type LabelDecisionAction = (typeof LABEL_DECISION_ACTIONS)[number];

interface LabelDecision {
  /** 1-based line in the file (the header is line 1). */
  line: number;
  sha256: string;
  source: string;
  action: LabelDecisionAction;
  /** The new label's index (relabel only). */
  label?: number;
}

/**
 * Parse and check a decisions file against the dataset's classes: `label` is a class name or its index. Every
 * problem is reported at once, naming the line; an image decided twice with different outcomes is an error.
 */
export async function parseLabelDecisions(text: Buffer | string, source: string, classes: readonly string[]): Promise<LabelDecision[]> {
  const { records } = await readCsvText(text, { source, required: ['sha256', 'action', 'label'] });
  const problems: string[] = [];
  const decisions: LabelDecision[] = [];
  const seen = new Map<string, LabelDecision>();
  for await (const record of records) {
    if (record.error !== undefined) {
      problems.push(`line ${record.line}: ${record.error}`);
      continue;
    }
    const { row, line } = record;
    const sha = (row.sha256 ?? '').trim().toLowerCase();
    const src = (row.source ?? '').trim();
    const action = (row.action ?? '').trim().toLowerCase() as LabelDecisionAction;
    if (sha !== '' && !/^[0-9a-f]{64}$/.test(sha)) problems.push(`line ${line}: sha256 ${JSON.stringify(row.sha256)} is not 64 hex digits`);
    if (sha === '' && src === '') problems.push(`line ${line}: neither sha256 nor source names the image`);
    if (!LABEL_DECISION_ACTIONS.includes(action))
      problems.push(`line ${line}: action ${JSON.stringify(row.action)} is not one of ${LABEL_DECISION_ACTIONS.join(', ')}`);
    const decision: LabelDecision = { line, sha256: sha, source: src, action };
    if (action === 'relabel') {
      const text = (row.label ?? '').trim();
      const byName = classes.indexOf(text);
      const label = byName >= 0 ? byName : /^\d+$/.test(text) && Number(text) < classes.length ? Number(text) : -1;
      if (label < 0)
        problems.push(`line ${line}: label ${JSON.stringify(row.label)} is not one of the classes (${classes.join(', ')}) or their indices`);
      else decision.label = label;
    }
    const key = sha || `source:${src}`;
    const before = seen.get(key);
    if (before && (before.action !== decision.action || before.label !== decision.label)) {
      problems.push(`line ${line}: ${sha ? `sha256 ${sha.slice(0, 12)}…` : `source ${src}`} was already decided differently on line ${before.line}`);
    }
    seen.set(key, decision);
    decisions.push(decision);
  }
  if (problems.length > 0)
    throw new InputError(`${source}: ${problems.slice(0, 8).join('; ')}${problems.length > 8 ? `; and ${problems.length - 8} more` : ''}`);
  return decisions;
}
