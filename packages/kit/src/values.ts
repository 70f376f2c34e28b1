/**
 * The one parser of typed values, for configuration keys (from flags, environment or YAML) and for a tool's own
 * flags alike, so every tool reports `--concurrency abc` the same way: "expected --concurrency to be an integer
 * (>= 1), got 'abc'".
 */
export type ValueType = 'string' | 'int' | 'number' | 'bool' | 'int[]' | 'number[]';

export interface ValueSpec {
  type: ValueType;
  choices?: readonly string[];
  /** Lower bound (inclusive unless `exclusiveMin`) for numbers and list items. */
  min?: number;
  exclusiveMin?: boolean;
  /** Upper bound (inclusive unless `exclusiveMax`). */
  max?: number;
  exclusiveMax?: boolean;
}

type ParsedValue = { value: string | number | boolean | number[] } | { problem: string };

/**
 * A command-line flag's value. A flag given more than once arrives as an array: a list flag takes the union of its
 * values, in order (`--lr 0.01,0.05 --lr 0.1` is `--lr 0.01,0.05,0.1`); any other flag must be given once.
 */
export function parseFlagValue(raw: unknown, spec: ValueSpec, label: string): ParsedValue {
  const list = spec.type === 'int[]' || spec.type === 'number[]';
  if (!list && Array.isArray(raw)) {
    if (raw.length === 1) return parseValue(raw[0], spec, label);
    return { problem: repeatedProblem(label, raw) };
  }
  return parseValue(raw, spec, label);
}

export function repeatedProblem(label: string, values: readonly unknown[]): string {
  return `expected ${label} once, got it ${values.length} times (${values.map((v) => `'${String(v)}'`).join(', ')}); give one value`;
}

export function parseValue(raw: unknown, spec: ValueSpec, label: string): ParsedValue {
  const fail = (expected: string): ParsedValue => ({ problem: `expected ${label} to be ${expected}, got ${shown(raw)}` });
  switch (spec.type) {
    case 'string': {
      if (typeof raw !== 'string' && typeof raw !== 'number') return fail('a string');
      const value = String(raw);
      if (spec.choices && !spec.choices.includes(value)) return fail(`one of ${spec.choices.join(', ')}`);
      return { value };
    }
    case 'bool': {
      if (typeof raw === 'boolean') return { value: raw };
      const text = String(raw).toLowerCase();
      if (['true', '1', 'yes', 'on'].includes(text)) return { value: true };
      if (['false', '0', 'no', 'off'].includes(text)) return { value: false };
      return fail('true or false');
    }
    case 'int':
    case 'number': {
      const value = toNumber(raw);
      const kind = (spec.type === 'int' ? 'an integer' : 'a number') + describeBounds(spec);
      if (value === undefined || (spec.type === 'int' && !Number.isSafeInteger(value)) || !inBounds(value, spec)) return fail(kind);
      return { value };
    }
    case 'int[]':
    case 'number[]': {
      const items = Array.isArray(raw)
        ? raw.flatMap((item) => (typeof item === 'string' ? item.split(',') : [item]))
        : typeof raw === 'number'
          ? [raw]
          : typeof raw === 'string'
            ? raw.split(',')
            : undefined;
      const expected = `a comma-separated list of ${spec.type === 'int[]' ? 'integers' : 'numbers'}${describeBounds(spec)}`;
      if (!items || items.length === 0) return fail(expected);
      const values = items.map(toNumber);
      const ok = values.every((value) => value !== undefined && (spec.type === 'number[]' || Number.isSafeInteger(value)) && inBounds(value, spec));
      return ok ? { value: values as number[] } : fail(expected);
    }
  }
}

/** What the value's kind and bounds are, for --help: "integer >= 1", "list of numbers > 0". */
export function describeValue(spec: ValueSpec): string {
  const kinds: Record<ValueType, string> = {
    string: 'text',
    bool: 'true/false',
    int: 'integer',
    number: 'number',
    'int[]': 'list of integers',
    'number[]': 'list of numbers',
  };
  return kinds[spec.type] + describeBounds(spec);
}

function shown(raw: unknown): string {
  return Array.isArray(raw) ? `'${raw.join(',')}'` : `'${String(raw)}'`;
}

function toNumber(raw: unknown): number | undefined {
  if (typeof raw === 'number') return Number.isFinite(raw) ? raw : undefined;
  if (typeof raw !== 'string' || raw.trim() === '') return undefined;
  const value = Number(raw.trim());
  return Number.isFinite(value) ? value : undefined;
}

function inBounds(value: number, spec: ValueSpec): boolean {
  if (spec.min !== undefined && (spec.exclusiveMin ? value <= spec.min : value < spec.min)) return false;
  return spec.max === undefined || (spec.exclusiveMax ? value < spec.max : value <= spec.max);
}

function describeBounds(spec: ValueSpec): string {
  const low = spec.min === undefined ? '' : `${spec.exclusiveMin ? '>' : '>='} ${spec.min}`;
  const high = spec.max === undefined ? '' : `${spec.exclusiveMax ? '<' : '<='} ${spec.max}`;
  const both = [low, high].filter(Boolean).join(' and ');
  return both ? ` ${both}` : '';
}
