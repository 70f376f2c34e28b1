import { createReadStream } from 'node:fs';
import type { Readable, Writable } from 'node:stream';
import type { Parser } from 'csv-parse';
import type { Stringifier } from 'csv-stringify';
import { FailureError, ImgpipeError, InputError, messageOf } from './errors.js';

export type CsvRow = Record<string, string>;

/** One data line of a CSV: either a row keyed by the header, or why the line could not be read. */
export type CsvRecord = { line: number; row: CsvRow; error?: undefined } | { line: number; row?: undefined; error: string };

interface ReadCsvOptions {
  /** Names the input in messages: a path, "stdin" or an s3:// URI. */
  source: string;
  /** Columns that must be in the header; a missing one is an InputError naming it. */
  required?: readonly string[];
  /** The file was written `forSpreadsheets` (see spreadsheetSafe): undo that quoting (readCsvRows). */
  forSpreadsheets?: boolean;
}

interface CsvTable {
  columns: string[];
  records: AsyncIterable<CsvRecord>;
}

/** csv-parse's settings for every CSV imgpipe reads: the header and fields as written, line numbers kept. */
const PARSE_OPTIONS = { bom: true, relax_column_count: true, skip_empty_lines: true, info: true, trim: false } as const;

type ParsedRecord = { record: string[]; info: { lines: number } };

/**
 * Stream a CSV with a header. Lines with the wrong number of fields are yielded as errors (with their line
 * number) rather than ending the stream, so batch tools can keep the good rows and report the bad ones.
 * csv-parse does the parsing: quoting, embedded newlines and BOMs are its job, not ours.
 */
export async function readCsv(input: Readable, { source, required = [] }: ReadCsvOptions): Promise<CsvTable> {
  // csv-parse loads here, on first use, not with kit (every tool's start-up). The input's errors are caught from
  // the start, so an input that fails while it loads (a missing file) is reported the same way as a later failure.
  let inputError: unknown;
  let parser: Parser | undefined;
  input.on('error', (error) => {
    inputError = error;
    parser?.destroy(error);
  });
  const { parse } = await import('csv-parse');
  parser = input.pipe(parse(PARSE_OPTIONS));
  if (inputError !== undefined) parser.destroy(inputError as Error);
  const tail = keepTail(input);
  const parseError = (error: unknown) => {
    // The input failed (a network read that could not be resumed): that error, not a parse error.
    if (inputError !== undefined)
      return inputError instanceof ImgpipeError
        ? inputError
        : new FailureError(`${source}: reading failed: ${messageOf(inputError)}`, { cause: inputError });
    return csvParseError(source, error, tail());
  };
  const iterator = parser[Symbol.asyncIterator]() as AsyncIterator<ParsedRecord>;
  const first = await iterator.next().catch((error: unknown) => {
    throw parseError(error);
  });
  const columns = headerColumns(first.done ? undefined : first.value, source, required);
  async function* records(): AsyncGenerator<CsvRecord> {
    while (true) {
      let next: IteratorResult<ParsedRecord>;
      try {
        next = await iterator.next();
      } catch (error) {
        throw parseError(error);
      }
      if (next.done) return;
      yield csvRecord(columns, next.value);
    }
  }
  return { columns, records: records() };
}

/**
 * readCsv for a CSV already in memory (a file read whole, stdin read to its end): parsed in one call, which takes a
 * third less time than the stream (prep-data's 2,000 rows: 16 ms against 25 ms). Same records and errors, except
 * that a parse error comes before any record rather than after the records before it.
 */
export async function readCsvText(text: Buffer | string, { source, required = [] }: ReadCsvOptions): Promise<CsvTable> {
  const { parse } = await import('csv-parse/sync');
  let parsed: ParsedRecord[];
  try {
    parsed = parse(text, PARSE_OPTIONS) as unknown as ParsedRecord[];
  } catch (error) {
    throw csvParseError(source, error, typeof text === 'string' ? text.slice(-4096) : text.subarray(-4096).toString());
  }
  const columns = headerColumns(parsed[0], source, required);
  async function* records(): AsyncGenerator<CsvRecord> {
    for (let i = 1; i < parsed.length; i++) yield csvRecord(columns, parsed[i]!);
  }
  return { columns, records: records() };
}

/** The InputError for a CSV that csv-parse could not read; `tail`: the input's last few KB. */
function csvParseError(source: string, error: unknown, tail: string): InputError {
  const reason = incompleteReason(error, tail);
  if (reason !== undefined) {
    return new InputError(
      `${source}: the CSV is incomplete: ${reason}; it was cut short by a stage that failed, so nothing is built from it (fix that stage and rerun it)`,
      { cause: error },
    );
  }
  return new InputError(`${source}: cannot parse CSV: ${(error as Error).message}`, { cause: error });
}

/** The header's column names, trimmed: each one once, the required ones present. */
function headerColumns(first: ParsedRecord | undefined, source: string, required: readonly string[]): string[] {
  if (!first) throw new InputError(`${source}: the CSV is empty; expected a header line`);
  const columns = first.record.map((name) => name.trim());
  // Rows are keyed by name: a second column of the same name would silently overwrite the first one's values.
  const repeated = columns.findIndex((name, index) => columns.indexOf(name) !== index);
  if (repeated !== -1) {
    const name = columns[repeated]!;
    throw new InputError(
      `${source}: column '${name}' appears twice in the header (columns ${columns.indexOf(name) + 1} and ${repeated + 1}); rename or remove one`,
    );
  }
  const missing = required.filter((name) => !columns.includes(name));
  if (missing.length > 0) {
    throw new InputError(
      `${source}: missing column${missing.length > 1 ? 's' : ''} ${missing.map((m) => `'${m}'`).join(', ')} ` +
        `in header (found: ${columns.join(',')})`,
    );
  }
  return columns;
}

/** A data line as a row keyed by the header, or why it is not one. */
function csvRecord(columns: readonly string[], { record, info }: ParsedRecord): CsvRecord {
  if (record.length !== columns.length) return { line: info.lines, error: `expected ${columns.length} fields, found ${record.length}` };
  const row: CsvRow = {};
  columns.forEach((name, index) => {
    row[name] = record[index] ?? '';
  });
  return { line: info.lines, row };
}

/**
 * The last line of a CSV whose writer failed after it had streamed rows (download-s3 over --max-failures, or
 * stopped by an error): a quote opened and never closed. A reader that only sees its input (the next stage of a
 * shell pipe) cannot learn the writer's exit status, and the rows before would parse as a complete table; with
 * this line no CSV reader (csv-parse, Python's csv, pandas) accepts the table, and readCsv names the reason.
 */
export function incompleteCsvTrailer(reason: string): string {
  return `${INCOMPLETE_MARK}${reason.replace(/["\r\n]+/g, ' ')}\n`;
}

const INCOMPLETE_MARK = '"#imgpipe: incomplete: ';

/** The reason a trailer gave, when `error` is the unclosed quote of one at the end of the input. */
function incompleteReason(error: unknown, tail: string): string | undefined {
  if ((error as { code?: string })?.code !== 'CSV_QUOTE_NOT_CLOSED') return undefined;
  const at = tail.lastIndexOf(`\n${INCOMPLETE_MARK}`);
  if (at === -1 && !tail.startsWith(INCOMPLETE_MARK)) return undefined;
  return tail.slice(at + 1 + INCOMPLETE_MARK.length).trim();
}

/** The last few KB that went through a stream, to look at after a parse error. */
function keepTail(input: Readable, bytes = 4096): () => string {
  let tail: Buffer = Buffer.alloc(0);
  input.on('data', (chunk: Buffer | string) => {
    const data = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
    tail = data.length >= bytes ? data.subarray(data.length - bytes) : Buffer.concat([tail, data]).subarray(-bytes);
  });
  return () => tail.toString('utf8');
}

export function readCsvFile(path: string, options: Omit<ReadCsvOptions, 'source'> & { source?: string } = {}): Promise<CsvTable> {
  return readCsv(createReadStream(path), { source: options.source ?? path, ...(options.required ? { required: options.required } : {}) });
}

/** Read a whole (small) CSV into memory, failing on the first bad line. */
export async function readCsvRows(input: Readable, options: ReadCsvOptions): Promise<{ columns: string[]; rows: CsvRow[] }> {
  const { columns, records } = await readCsv(input, options);
  const rows: CsvRow[] = [];
  for await (const record of records) {
    if (record.error !== undefined) throw new InputError(`${options.source}: line ${record.line}: ${record.error}`);
    if (options.forSpreadsheets) for (const name of columns) record.row[name] = fromSpreadsheetSafe(record.row[name]!);
    rows.push(record.row);
  }
  return { columns, rows };
}

interface CsvWriter {
  write(row: Record<string, unknown>): Promise<void>;
  end(): Promise<void>;
}

const FORMULA_START = /^'*[=+\-@\t\r]/;
const QUOTED_FORMULA_START = /^'+[=+\-@\t\r]/;
const PLAIN_NUMBER = /^[+-]?(\d+\.?\d*|\.\d+)(e[+-]?\d+)?$/i;

/**
 * A cell made safe from spreadsheet formula injection (OWASP "CSV injection"): Excel, LibreOffice and Google
 * Sheets run a cell that starts with =, +, -, @, tab or CR as a formula, so such a cell gets a single quote in
 * front (plain numbers such as -0.5 are left alone). The quoting is reversible, so a file written this way reads
 * back to the original values: a cell that already starts with quotes before such a character gets one more, and
 * fromSpreadsheetSafe takes one off.
 *
 * imgpipe writes with it (`forSpreadsheets`) the CSVs meant for people, which hold class and file names from the
 * user's data: predictions.csv, results.csv, trials.csv (eval-model reads the last two back with
 * `forSpreadsheets`, undoing it), rejected.csv and download-s3's --failures list. Data files that tools read as data (the dataset's split CSVs,
 * download-s3's output CSV) keep the values exactly as given.
 */
export function spreadsheetSafe(value: string): string {
  return FORMULA_START.test(value) && !PLAIN_NUMBER.test(value) ? `'${value}` : value;
}

/** The value spreadsheetSafe was given. */
export function fromSpreadsheetSafe(value: string): string {
  return QUOTED_FORMULA_START.test(value) && !PLAIN_NUMBER.test(value.slice(1)) ? value.slice(1) : value;
}

interface CsvWriteOptions {
  /** Quote cells that a spreadsheet would run as formulas (spreadsheetSafe): for files meant for people. */
  forSpreadsheets?: boolean;
}

function stringifyOptions(columns: readonly string[], options: CsvWriteOptions) {
  return {
    header: true,
    columns: [...columns],
    cast: { boolean: (v: boolean) => String(v), ...(options.forSpreadsheets ? { string: (v: string) => spreadsheetSafe(v) } : {}) },
  };
}

/** A CSV put together a few rows at a time, in memory (see csvText). */
export interface CsvText {
  /** Add rows (formatted now). */
  add(rows: readonly Record<string, unknown>[]): void;
  /** The whole CSV so far, the header first: what csvString gives for the same rows. */
  text(): string;
}

/**
 * A CSV formatted as its rows arrive, for a file written whole at the end: the formatting happens while the rows come
 * in (prep-data: while images decode), not all at once when the file is due. csv-stringify loads here.
 */
export async function csvText(columns: readonly string[], options: CsvWriteOptions = {}): Promise<CsvText> {
  const { stringify } = await import('csv-stringify/sync');
  const header = stringify([], stringifyOptions(columns, options));
  const rowOptions = { ...stringifyOptions(columns, options), header: false };
  const parts = [header];
  return {
    add(rows) {
      if (rows.length > 0) parts.push(stringify(rows as Record<string, unknown>[], rowOptions));
    },
    text: () => parts.join(''),
  };
}

/**
 * A streaming CSV writer (csv-stringify) with a fixed header, honouring back-pressure. csv-stringify loads when a
 * writer is made, not with kit (every tool's start-up); the first write or end waits for it.
 */
export function createCsvWriter(output: Writable, columns: readonly string[], options: CsvWriteOptions = {}): CsvWriter {
  let failure: unknown;
  const ready = import('csv-stringify').then(({ stringify }) => {
    const stringifier: Stringifier = stringify(stringifyOptions(columns, options));
    stringifier.pipe(output, { end: false });
    stringifier.on('error', (error) => (failure = error));
    return stringifier;
  });
  ready.catch(() => {}); // a failed load is thrown by the first write or end
  return {
    async write(row) {
      const stringifier = await ready;
      if (failure) throw failure;
      if (!stringifier.write(row)) await new Promise((resolve) => stringifier.once('drain', resolve));
    },
    async end() {
      const stringifier = await ready;
      if (failure) throw failure;
      await new Promise<void>((resolve, reject) => {
        stringifier.once('error', reject);
        stringifier.once('end', resolve);
        stringifier.end();
        stringifier.resume();
      });
      if (failure) throw failure;
    },
  };
}

/**
 * A whole CSV as a string, for small files written atomically: csvText's, all rows at once (csv-stringify's synchronous
 * API gives its stream's output without a stream's work per row: half the time for prep-data's 2,000 rows).
 */
export async function csvString(
  columns: readonly string[],
  rows: readonly Record<string, unknown>[],
  options: CsvWriteOptions = {},
): Promise<string> {
  const csv = await csvText(columns, options);
  csv.add(rows);
  return csv.text();
}
