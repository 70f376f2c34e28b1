import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import type { Readable, Writable } from 'node:stream';
import pLimit from 'p-limit';
import {
  createCsvWriter,
  createProgress,
  csvString,
  exitCodeOf,
  EXIT_FAILED,
  EXIT_OK,
  EXIT_USAGE,
  InputError,
  messageOf,
  openAtomicWriter,
  readCsv,
  UsageError,
  writeFileAtomic,
  type CsvRecord,
  type CsvRow,
  type Logger,
  type ProgressEvent,
  incompleteCsvTrailer,
  acquireLock,
  type Lock,
  removeStaleTemps,
  sha256File,
  isRegularFile,
} from '@imgpipe/kit';
import {
  downloadObject,
  headObject,
  isBucketName,
  isS3Uri,
  isSystemicS3Error,
  parseS3Uri,
  safeLocalPath,
  type S3Client,
  matchingDigest,
  openObjectStream,
} from '@imgpipe/s3';
import { inShard, type Shard } from './shard.js';
import { refuseLinkOut } from './dest-path.js';
import { PathClaims } from './path-claims.js';

export interface DownloadS3Options {
  /** The images CSV: a path, '-' for `stdin`, or s3://bucket/key.csv. */
  csv: string;
  /** Directory the images land in, at their key's path. */
  dest: string;
  /** false: no downloads; rows must already carry local_image, whose files are checked. */
  download: boolean;
  /** Needed when downloading or when the CSV is on S3. */
  client?: S3Client;
  /** Used for rows whose bucket column is empty (aws.bucket_name). */
  defaultBucket?: string;
  concurrency?: number;
  retries?: number;
  /** Failed rows tolerated before the exit code turns non-zero. */
  maxFailures?: number;
  /** Write the failed rows (line, bucket, s3_image, local_image, error) to this CSV. */
  failuresPath?: string;
  /** Write the CSV here (atomically) instead of `stdout`. */
  outPath?: string;
  /** Only this shard's rows: data rows whose 0-based index mod `count` is `index` (--shard I/N). */
  shard?: Shard;
  /** Abort and retry a body that delivers nothing for this many ms. */
  stallMs?: number;
  /** Wait this long for another process's lock on --dest (default: fail at once with exit 75). */
  waitLockSeconds?: number;
  stdin: Readable;
  stdout: NodeJS.WritableStream;
  stderr?: NodeJS.WritableStream;
  cwd: string;
  log: Logger;
  onProgress?: (event: ProgressEvent) => void;
}

type RowStatus = 'ok' | 'skipped' | 'failed';

/** One record per CSV data line, for success and failure alike. */
interface RowResult {
  line: number;
  bucket: string;
  key: string;
  /** local_image as written to the output CSV. */
  path: string;
  status: RowStatus;
  bytes: number;
  /** sha256 of the local file's bytes (written to the local_sha256 column). */
  sha256?: string;
  error?: string;
  /** The failure is the input's fault (bad line, unsafe or missing key, missing file): exit 2 rather than 1. */
  inputError?: boolean;
  row?: CsvRow;
}

interface DownloadSummary {
  /** The rows that failed, in input order (without their CSV data). */
  failures: RowResult[];
  ok: number;
  skipped: number;
  failed: number;
  bytes: number;
  seconds: number;
  exitCode: number;
}

const FAILURE_COLUMNS = ['line', 'bucket', 's3_image', 'local_image', 'error'] as const;
/** The column naming each local file's content (sha256 of its bytes): prep-data's up-to-date check covers it. */
const LOCAL_SHA256_COLUMN = 'local_sha256';
const SHOWN_FAILURES = 20;

/**
 * Download every image of an images CSV into `dest` (bounded concurrency, retries, skip what is already there)
 * and write the CSV with a `local_image` column, in input order, leaving out rows that failed. Failed rows are
 * reported on stderr and in `failuresPath`; the exit code is non-zero when more than `maxFailures` failed.
 */
export async function runDownloadS3(options: DownloadS3Options): Promise<DownloadSummary> {
  const lock = options.download ? await lockDestination(options) : undefined;
  try {
    return await downloadAll(options);
  } finally {
    await lock?.release();
  }
}

/**
 * One writer per shard of --dest (`.data.lock`, or `.data.shard-2-of-4.lock` for --shard 2/4): the shards of a CSV
 * share a destination, and a second process for the same rows exits 75. Processes writing one --dest at once are
 * safe with each other: every file is written under its writer's temp name and renamed into place, and only temp
 * files of dead processes are removed.
 */
function lockDestination(options: DownloadS3Options): Promise<Lock> {
  const dest = resolve(options.cwd, options.dest);
  const shard = options.shard;
  const common = { flag: '--dest', waitSeconds: options.waitLockSeconds ?? 0 };
  if (!shard) return acquireLock(dest, { ...common, what: 'download destination', shown: options.dest });
  return acquireLock(`${dest}.shard-${shard.index}-of-${shard.count}`, {
    ...common,
    what: `download destination's shard ${shard.index}/${shard.count}`,
    shown: `${options.dest} --shard ${shard.index}/${shard.count}`,
  });
}

async function downloadAll(options: DownloadS3Options): Promise<DownloadSummary> {
  const started = Date.now();
  const { log, download } = options;
  const concurrency = options.concurrency ?? 16;
  const maxFailures = options.maxFailures ?? 0;
  const input = await openCsvInput(options);
  const table = await readCsv(input.stream, {
    source: input.name,
    required: download ? (options.defaultBucket ? ['s3_image'] : ['bucket', 's3_image']) : ['local_image'],
  });
  const columns = [...table.columns, ...['local_image', LOCAL_SHA256_COLUMN].filter((name) => !table.columns.includes(name))];

  let bytes = 0;
  const counts = { ok: 0, skipped: 0, failed: 0 };
  // The CSV is read as the rows are worked on, so the total is not known up front: the count shows from the first row.
  const progress = createProgress({
    label: download ? 'download' : 'check',
    unit: 'files',
    quiet: log.quiet,
    ...(options.stderr ? { stream: options.stderr } : {}),
    ...(options.onProgress ? { onEvent: options.onProgress } : {}),
  });
  const detail = () => {
    const seconds = Math.max(0.001, (Date.now() - started) / 1000);
    return `${(bytes / 1e6).toFixed(1)} MB ${(bytes / 1e6 / seconds).toFixed(1)} MB/s, ${counts.skipped} skipped, ${counts.failed} failed`;
  };
  const finish = (result: RowResult): RowResult => {
    counts[result.status] += 1;
    progress.increment(1, detail());
    return result;
  };

  const limit = pLimit(concurrency);
  // An error that every request would hit (bad credentials, unreachable endpoint) stops the whole run.
  let fatal: unknown;
  const stopOnSystemic = (result: RowResult & { cause?: unknown }): RowResult => {
    if (result.cause !== undefined && isSystemicS3Error(result.cause)) fatal ??= result.cause;
    delete result.cause;
    return result;
  };
  // Per distinct object, for the whole run: its result (without the row) and the path it claims. This is what
  // memory grows with (about 0.6 KB per object); rows themselves are dropped once written.
  const byObject = new Map<string, Promise<RowResult>>();
  const claims = new PathClaims(options.dest);
  const cleaned = new Set<string>();
  let removedTemps = 0;
  // Starts the work of one row; the result is wrapped, as an async function would wait for a promise it returns.
  const start = async (record: CsvRecord): Promise<{ job: Promise<RowResult> }> => {
    const done = (result: RowResult) => ({ job: Promise.resolve(finish(result)) });
    if (record.error !== undefined) {
      return done({ line: record.line, bucket: '', key: '', path: '', status: 'failed', bytes: 0, error: record.error, inputError: true });
    }
    const row = record.row;
    if (!download) return { job: limit(async () => finish({ ...(await checkLocal(row, record.line, options)), row })) };
    let bucket = row.bucket || options.defaultBucket || '';
    let key = row.s3_image ?? '';
    const base = { line: record.line, bucket, key, path: '', bytes: 0, row };
    try {
      if (isS3Uri(key)) ({ bucket, key } = parseS3Uri(key, 's3_image'));
      if (!bucket) throw new InputError('no bucket (the bucket column is empty; set it, or pass --bucket)');
      if (!isBucketName(bucket)) throw new InputError(`bucket ${JSON.stringify(bucket)} is not a bucket name (letters, digits, '.', '-', '_')`);
      const path = safeLocalPath(options.dest, key);
      const id = `${bucket}/${key}`;
      claims.claim(path, id);
      const same = byObject.get(id);
      if (same) {
        // The same object listed twice: fetched once, both rows get its result.
        return {
          job: same.then((first) => finish({ ...first, line: record.line, row, bytes: 0, status: first.status === 'failed' ? 'failed' : 'skipped' })),
        };
      }
      // Temp files of dead earlier runs are removed from each directory before this run first writes into it.
      const dir = dirname(resolve(options.cwd, path));
      if (!cleaned.has(dir)) {
        cleaned.add(dir);
        removedTemps += (await removeStaleTemps(dir)).length;
      }
      const job = limit(async () => {
        if (fatal !== undefined) throw fatal;
        return stopOnSystemic(await fetchOne(bucket, key, path, base, options, (n) => (bytes += n)));
      }).then(finish);
      const kept = job.then(({ row: _row, ...result }) => result);
      kept.catch(() => undefined); // a rejection (fatal) is reported through `job`
      byObject.set(id, kept);
      return { job };
    } catch (error) {
      return done({ ...base, bucket, key, status: 'failed', error: messageOf(error), inputError: exitCodeOf(error) === EXIT_USAGE });
    }
  };

  const failures: RowResult[] = [];
  let total = 0;
  if (options.outPath) await removeStaleTemps(dirname(resolve(options.cwd, options.outPath)));
  const output = options.outPath ? await openAtomicWriter(resolve(options.cwd, options.outPath)) : undefined;
  const target = output ? output.stream : (options.stdout as Writable);
  const writer = createCsvWriter(target, columns);
  const emit = async (job: Promise<RowResult>) => {
    const result = await job;
    if (fatal !== undefined) throw fatal;
    total += 1;
    if (result.status === 'failed') {
      const { row: _row, ...failure } = result;
      failures.push(failure);
    } else if (result.row) {
      await writer.write({ ...result.row, local_image: result.path, [LOCAL_SHA256_COLUMN]: result.sha256 ?? '' });
    }
  };
  try {
    // Rows stream through a window: at most `window` are read ahead of the one written next (output keeps input order).
    const window = Math.max(256, concurrency * 16);
    const pending: Promise<RowResult>[] = [];
    let index = 0;
    for await (const record of table.records) {
      if (!inShard(index++, options.shard)) continue;
      const { job } = await start(record);
      job.catch(() => undefined); // awaited in order by emit; this keeps an early rejection from counting as unhandled
      pending.push(job);
      if (pending.length >= window) await emit(pending.shift()!);
    }
    while (pending.length > 0) await emit(pending.shift()!);
    await writer.end();
    if (counts.failed > maxFailures) {
      await writeText(target, incompleteCsvTrailer(`download-s3: ${counts.failed} of ${total} rows failed (over --max-failures ${maxFailures})`));
    }
    await output?.commit();
  } catch (error) {
    await output?.abort();
    // stdout may already carry rows: end it so the next stage of a pipe cannot take them for the whole CSV.
    if (!output)
      await writer
        .end()
        .then(() => writeText(target, incompleteCsvTrailer(`download-s3 stopped: ${messageOf(error)}`)))
        .catch(() => undefined);
    throw error;
  } finally {
    progress.finish(detail());
  }
  if (removedTemps > 0) log.info('removed %d temp files left in %s by earlier runs that were stopped', removedTemps, options.dest);

  for (const failure of failures.slice(0, SHOWN_FAILURES)) log.warn('%s: line %d: %s', input.name, failure.line, failure.error);
  if (failures.length > SHOWN_FAILURES) {
    log.warn(
      '... and %d more failed rows%s',
      failures.length - SHOWN_FAILURES,
      options.failuresPath ? ` (all in ${options.failuresPath})` : ' (pass --failures FILE to list them all)',
    );
  }
  if (options.failuresPath) {
    const text = await csvString(
      FAILURE_COLUMNS,
      failures.map((f) => ({ line: f.line, bucket: f.bucket, s3_image: f.key, local_image: f.path, error: f.error })),
      { forSpreadsheets: true },
    );
    await writeFileAtomic(resolve(options.cwd, options.failuresPath), text);
  }
  const seconds = (Date.now() - started) / 1000;
  log.info(
    '%s: %d ok, %d skipped (already there), %d failed; %s MB in %ss',
    download ? 'downloaded' : 'checked',
    counts.ok,
    counts.skipped,
    counts.failed,
    (bytes / 1e6).toFixed(1),
    seconds.toFixed(1),
  );
  let exitCode = EXIT_OK;
  if (failures.length > maxFailures) {
    exitCode = failures.every((f) => f.inputError) ? EXIT_USAGE : EXIT_FAILED;
    log.error(
      '%d of %d rows failed (--max-failures %d); the rows that succeeded were written out, followed by a line that marks the CSV incomplete, so that no later stage builds on it (pass --max-failures N to accept up to N failed rows)',
      failures.length,
      total,
      maxFailures,
    );
  }
  return { failures, ...counts, bytes, seconds, exitCode };
}

function writeText(stream: NodeJS.WritableStream, text: string): Promise<void> {
  return new Promise((done, fail) => stream.write(text, (error) => (error ? fail(error) : done())));
}

async function openCsvInput(options: DownloadS3Options): Promise<{ stream: Readable; name: string }> {
  const csv = options.csv;
  if (csv === '-') return { stream: options.stdin, name: 'stdin' };
  if (isS3Uri(csv)) {
    const { bucket, key } = parseS3Uri(csv, '--csv');
    if (!options.client) throw new UsageError(`--csv ${csv}: reading a CSV from S3 needs an S3 client`);
    // Streamed; a connection dropped mid-body is resumed where it stopped, never parsed as a cut-short CSV.
    return { stream: openObjectStream(options.client, bucket, key, { retries: options.retries ?? 5, log: options.log }), name: csv };
  }
  const path = resolve(options.cwd, csv);
  const info = await stat(path).catch(() => undefined);
  if (!info?.isFile()) throw new UsageError(`--csv ${csv}: no such file (pass a CSV path, '-' for stdin, or s3://bucket/key.csv)`);
  return { stream: createReadStream(path), name: csv };
}

async function fetchOne(
  bucket: string,
  key: string,
  path: string,
  base: Omit<RowResult, 'status'>,
  options: DownloadS3Options,
  onBytes: (n: number) => void,
): Promise<RowResult & { cause?: unknown }> {
  const client = options.client;
  if (!client) throw new UsageError('downloading needs an S3 client');
  const full = resolve(options.cwd, path);
  const retry = { retries: options.retries ?? 5, log: options.log };
  try {
    await refuseLinkOut(resolve(options.cwd, options.dest), full);
    // Only a file already present costs a HEAD: first runs make one request per object.
    if (await isRegularFile(full)) {
      const head = await headObject(client, bucket, key, retry);
      if (!head) throw new InputError(`download s3://${bucket}/${key}: no such key (check the key, or the CSV row naming it)`);
      const digest = await matchingDigest(full, head);
      if (digest) return { ...base, bucket, key, path, status: 'skipped', bytes: 0, sha256: digest.sha256 };
    }
    const got = await downloadObject(client, bucket, key, full, { ...retry, onBytes, ...(options.stallMs ? { stallMs: options.stallMs } : {}) });
    return { ...base, bucket, key, path, status: 'ok', bytes: got.bytes, sha256: got.sha256 };
  } catch (error) {
    return { ...base, bucket, key, path, status: 'failed', error: messageOf(error), inputError: exitCodeOf(error) === EXIT_USAGE, cause: error };
  }
}

async function checkLocal(row: CsvRow, line: number, options: DownloadS3Options): Promise<RowResult> {
  const path = row.local_image ?? '';
  const base = { line, bucket: row.bucket ?? '', key: row.s3_image ?? '', path, bytes: 0 };
  if (!path)
    return { ...base, status: 'failed', error: `empty local_image (with --no-download-data every row must name its file)`, inputError: true };
  const info = await stat(resolve(options.cwd, path)).catch(() => undefined);
  if (!info?.isFile()) {
    return { ...base, status: 'failed', error: `local_image '${path}' does not exist (download it, or drop --no-download-data)`, inputError: true };
  }
  return { ...base, status: 'ok', bytes: info.size, sha256: await sha256File(resolve(options.cwd, path)) };
}
