import { availableParallelism } from 'node:os';
import { mkdir, rm } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { assignSplits, checkFractions } from './split.js';
import {
  acquireLock,
  removeStaleTemps,
  trackTemp,
  untrackTemp,
  type SplitFractions,
  type SplitMethod,
  type SplitName,
  createProgress,
  packageVersion,
  DATASET_FORMAT,
  InputError,
  MANIFEST_FILE,
  REJECTED_FILE,
  replaceDirectory,
  sha256,
  silentLogger,
  tempPathFor,
  UsageError,
  type DatasetManifest,
  type Logger,
  type Pointer,
  type ProgressEvent,
  type SplitFiles,
  type Fit,
  writeManifest,
  writeRejected,
} from '@imgpipe/kit';
import { checkOutTarget } from './out-dir.js';
import { DecodePool, DEFAULT_MAX_PIXELS, imageEngineVersions, imagePipelineInfo, tuneImageEngine } from '@imgpipe/images';
import { decodeOutcome, decodeWindow, orderedMap, sharedBuffers } from './decode-pass.js';
import { applyDecisions, type DecisionsInput } from './decisions.js';
import { parsePrepInput, type PrepItem } from './input.js';
import { Deduper, dedupeItems } from './dedupe.js';
import { regroup, SplitWriter, type Placed } from './write-splits.js';
import { describeRejected, REJECTED_COLUMNS, rejectedRow, summarise, type RejectedRow } from './report.js';

export interface PrepDataOptions {
  /** The images CSV's bytes (read whole: its sha256 is part of the manifest) and a name for messages. */
  csv: Buffer;
  csvSource: string;
  out: string;
  /** local_image paths resolve against this (default process.cwd()). */
  cwd?: string;
  size: number;
  fit?: Fit;
  fractions: SplitFractions;
  seed: number;
  splitBy?: SplitMethod;
  maxPixels?: number;
  /** Fail when more images than this are rejected (default: no limit). */
  maxRejected?: number;
  force?: boolean;
  /** Wait this long for another build of the same --out (default: fail at once with exit 75). */
  waitLockSeconds?: number;
  /** Threads decoding images (default: the number of cores). */
  concurrency?: number;
  /** The decode threads, when started early (startDecodeThreads: they take a tenth of a second); closed when done. */
  decodeThreads?: Promise<DecodePool>;
  /** Review decisions to apply (label-decisions.csv): drops and relabels, matched by image content. */
  decisions?: DecisionsInput;
  log?: Logger;
  stderr?: NodeJS.WritableStream;
  quiet?: boolean;
  onProgress?: (event: ProgressEvent) => void;
}

interface PrepDataResult {
  pointer: Pointer;
  manifest: DatasetManifest;
  /** True when the directory was already built from the same CSV and options, so nothing was done. */
  upToDate: boolean;
  rejected: RejectedRow[];
  seconds: number;
}

/**
 * Start prep-data's decode threads (default: one per core) without waiting for them, so that they start while the
 * caller reads its input; pass the promise to runPrepData as decodeThreads.
 */
export function startDecodeThreads(concurrency = availableParallelism()): Promise<DecodePool> {
  if (!Number.isInteger(concurrency) || concurrency < 1) throw new UsageError(`expected --concurrency to be a positive integer, got ${concurrency}`);
  const starting = DecodePool.start(concurrency);
  starting.catch(() => undefined); // awaited by runPrepData, or closed unused by closeDecodeThreads
  return starting;
}

/** Close decode threads from startDecodeThreads (nothing to do when they failed to start). */
export async function closeDecodeThreads(starting: Promise<DecodePool>): Promise<void> {
  const pool = await starting.catch(() => undefined);
  await pool?.close();
}

/** Decode, resize and split the images of a CSV into a dataset directory (see docs/internals.md). */
export async function runPrepData(options: PrepDataOptions): Promise<PrepDataResult> {
  const threads = options.decodeThreads ?? startDecodeThreads(options.concurrency);
  try {
    return await prepare(options, threads);
  } finally {
    await closeDecodeThreads(threads);
  }
}

async function prepare(options: PrepDataOptions, threads: Promise<DecodePool>): Promise<PrepDataResult> {
  const phases: Phases = { started: performance.now(), hashed: 0 };
  const log = options.log ?? silentLogger;
  const fit = options.fit ?? 'fill';
  const method = options.splitBy ?? 'random';
  const maxPixels = options.maxPixels ?? DEFAULT_MAX_PIXELS;
  const { size, fractions, seed, out } = options;
  checkFractions(fractions);
  if (!Number.isInteger(size) || size < 1) throw new UsageError(`expected --img-dimensions to be a positive integer, got ${size}`);

  const sourceSha = sha256(options.csv);
  const preprocessing = { ...(await imagePipelineInfo()), fit, max_pixels: maxPixels };
  const decisionsSha = options.decisions ? sha256(options.decisions.text) : undefined;
  const optionsSha = sha256(
    JSON.stringify({
      format: DATASET_FORMAT,
      image_size: size,
      fit,
      split: { method, seed, fractions },
      preprocessing,
      ...(decisionsSha ? { decisions: decisionsSha } : {}),
    }),
  );
  const pointer: Pointer = { kind: 'dataset', path: out, manifest: join(out, MANIFEST_FILE) };

  const cwd = options.cwd ?? process.cwd();
  const finalDir = resolve(cwd, out);
  const progressOptions = {
    unit: 'images',
    quiet: options.quiet ?? false,
    ...(options.stderr ? { stream: options.stderr } : {}),
    ...(options.onProgress ? { onEvent: options.onProgress } : {}),
  };
  const parsed = await parsePrepInput(options.csv, options.csvSource, cwd);
  const lock = await acquireLock(finalDir, { what: 'dataset build', flag: '--out', waitSeconds: options.waitLockSeconds ?? 0 });
  try {
    await removeStaleTemps(dirname(finalDir));
    const previous = await checkOutTarget(
      finalDir,
      out,
      cwd,
      parsed.items.map((item) => item.path),
    );
    const plan = { ...options, fit, method, maxPixels, finalDir, sourceSha, optionsSha, preprocessing, pointer, phases, log };
    const mayBeUpToDate = previous?.source_csv_sha256 === sourceSha && previous.options_sha256 === optionsSha && !options.force;
    if (!mayBeUpToDate && !options.decisions) {
      // A fresh build reads each file once: the decode threads hash it as they decode it, and duplicates are found
      // as the images come back.
      const pool = await threads;
      phases.hashed = performance.now();
      return await build({ ...plan, pool, input: parsed, deduplicated: false });
    }
    // The up-to-date check and review decisions need every file's hash first: one set of threads reads every file
    // to hash it, then again to decode it (this thread hashes files too until they have started). For a large CSV
    // this is the first long step, so it shows progress.
    const { kept, duplicates } = await dedupeItems(
      parsed.items,
      threads,
      createProgress({ ...progressOptions, label: 'prep-data: hash', total: parsed.items.length }),
    );
    phases.hashed = performance.now();
    const pool = await threads;
    const deduplicated = { ...parsed, items: kept, early: [...parsed.early, ...duplicates] };
    const reviewed = options.decisions ? await applyDecisions(kept, parsed.classes, options.decisions, log) : undefined;
    const input = reviewed ? { ...deduplicated, items: reviewed.items, early: [...deduplicated.early, ...reviewed.dropped] } : deduplicated;
    if (mayBeUpToDate && previous.images_sha256 === imagesShaOf(input.items)) {
      log.info(`${out} is up to date (same CSV, image content and options); nothing to do (--force rebuilds it)`);
      return { pointer, manifest: previous, upToDate: true, rejected: [], seconds: (performance.now() - phases.started) / 1000 };
    }
    return await build({ ...plan, pool, input, deduplicated: true, review: reviewed?.review });
  } finally {
    await lock.release();
  }
}

/** The images' content is part of the up-to-date key: an image changed in place (same CSV) rebuilds the dataset. */
function imagesShaOf(items: readonly PrepItem[]): string {
  return sha256(items.map((item) => `${item.source}\t${item.contentSha256 ?? 'unreadable'}`).join('\n'));
}

/** When prep-data started and when its hash pass ended (performance.now()): the summary's seconds, --debug's timings. */
interface Phases {
  started: number;
  hashed: number;
}

interface BuildPlan extends PrepDataOptions {
  fit: Fit;
  method: SplitMethod;
  maxPixels: number;
  pool: DecodePool;
  finalDir: string;
  input: Awaited<ReturnType<typeof parsePrepInput>>;
  /** Whether dedupeItems already ran over input.items (each then has its contentSha256); if not, the decodes dedupe. */
  deduplicated: boolean;
  sourceSha: string;
  optionsSha: string;
  preprocessing: Record<string, string | number | boolean>;
  pointer: Pointer;
  phases: Phases;
  log: Logger;
  review?: DatasetManifest['review'] | undefined;
}

async function build(options: BuildPlan): Promise<PrepDataResult> {
  const { input, finalDir, fit, method, maxPixels, pool, size, fractions, seed, out, sourceSha, optionsSha, preprocessing, pointer, phases, log } =
    options;
  const rejected: RejectedRow[] = input.early.map(({ item, reason, detail }) => rejectedRow(item, reason, detail));
  const checkBudget = () => {
    // Images a person dropped on review are not failures: they do not count against --max-rejected.
    const failed = rejected.filter((row) => row.reason !== 'dropped-by-review').length;
    if (options.maxRejected !== undefined && failed > options.maxRejected) {
      throw new InputError(
        `${options.csvSource}: ${failed} images rejected, over --max-rejected ${options.maxRejected}; ${describeRejected(rejected)}`,
      );
    }
  };
  checkBudget();

  await mkdir(dirname(finalDir), { recursive: true });
  const buildDir = tempPathFor(finalDir);
  trackTemp(buildDir);
  await mkdir(buildDir);
  await tuneImageEngine({ cache: false });
  try {
    const imageBytes = size * size * 3;
    // Splits are drawn up front over every candidate and each image goes straight to its split file. Only when an
    // image turns out unreadable during decoding (and only for --split-by random, where counts depend on the set)
    // are the splits redrawn over the usable images and the staged pixels regrouped, one image at a time.
    const candidates = input.items.map((item) => ({ key: item.source, label: item.label }));
    const staged = assignSplits(candidates, fractions, { method, seed });
    const stage = await SplitWriter.open(buildDir, '.stage-', input.classes, input.columns);
    const placed: Placed[] = [];
    // A duplicate found as the decodes come back is rejected like an image that fails to decode (its pixels are not
    // written): the splits are then redrawn over the images placed, the splits a build that deduplicated first draws.
    const deduper = options.deduplicated ? undefined : new Deduper();
    /** input.items less the duplicates, in input order: what the up-to-date key hashes. */
    const kept: PrepItem[] = [];
    const progress = createProgress({
      label: 'prep-data',
      total: input.items.length,
      unit: 'images',
      quiet: options.quiet ?? false,
      ...(options.stderr ? { stream: options.stderr } : {}),
      ...(options.onProgress ? { onEvent: options.onProgress } : {}),
    });
    let entries: Record<SplitName, SplitFiles>;
    try {
      let done = 0;
      const decodeOptions = { size, fit, maxPixels };
      const { inFlight, window } = decodeWindow(pool, imageBytes);
      // orderedMap starts image i + window only once image i is handed out, and each image is written before the next
      // is taken: window + 1 buffers are enough for no buffer to hold two images at once.
      const buffers = sharedBuffers(window + 1, imageBytes);
      const withIdentity = !options.deduplicated;
      const decoding = orderedMap(
        input.items,
        (item, i) => decodeOutcome(pool, item.path, decodeOptions, buffers(i), withIdentity),
        inFlight,
        window,
      );
      for await (const outcome of decoding) {
        const index = done++;
        const checked = deduper ? deduper.check(input.items[index]!, outcome.identity!) : { kept: input.items[index]! };
        if ('duplicate' in checked) {
          const { item, reason, detail } = checked.duplicate;
          rejected.push(rejectedRow(item, reason, detail));
          checkBudget();
        } else {
          const item = checked.kept;
          kept.push(item);
          if (outcome.ok) {
            const split = staged[index]!;
            placed.push({ item, from: { split, position: await stage.append(split, item, outcome.pixels) }, split });
          } else {
            rejected.push(rejectedRow(item, outcome.reason, outcome.detail));
            log.debug(`rejected line ${item.line} ${item.path}: ${outcome.reason}: ${outcome.detail}${outcome.cause ? ` (${outcome.cause})` : ''}`);
            checkBudget();
          }
        }
        progress.update(done, rejected.length > 0 ? `${rejected.length} rejected` : undefined);
      }
      progress.finish(rejected.length > 0 ? `${rejected.length} rejected` : undefined);
      // The threads end (a few milliseconds each) while the split files are finished; runPrepData awaits it.
      pool.close().catch(() => undefined);
      if (placed.length === 0) {
        throw new InputError(
          `${options.csvSource}: none of the ${input.items.length + input.early.length} images is usable; ${describeRejected(rejected)}`,
        );
      }
      const decoded = performance.now();
      const final =
        placed.length === input.items.length
          ? staged
          : assignSplits(
              placed.map(({ item }) => ({ key: item.source, label: item.label })),
              fractions,
              { method, seed },
            );
      if (placed.length === input.items.length || method === 'hash') {
        entries = await stage.finish();
      } else {
        await stage.close();
        placed.forEach((entry, index) => {
          entry.split = final[index]!;
        });
        const target = await SplitWriter.open(buildDir, '', input.classes, input.columns);
        try {
          await regroup(stage, target, placed, imageBytes);
        } finally {
          await target.close();
        }
        entries = await target.finish();
        log.debug(`regrouped ${placed.length} images after ${input.items.length - placed.length} decode-time rejections`);
      }
      const { started, hashed } = phases;
      const seconds = (from: number, to: number) => `${((to - from) / 1000).toFixed(2)}s`;
      log.debug(
        `timings: CSV and hashes ${seconds(started, hashed)}, decode ${seconds(hashed, decoded)}, split files ${seconds(decoded, performance.now())}`,
      );
    } finally {
      await stage.close();
    }
    rejected.sort((a, b) => a.line - b.line);
    await writeRejected(buildDir, REJECTED_COLUMNS, rejected);

    const manifest: DatasetManifest = {
      format: DATASET_FORMAT,
      classes: input.classes,
      image_size: size,
      channels: 3,
      layout: 'NHWC',
      dtype: 'uint8',
      fit,
      split: { method, seed, fractions: { ...fractions } },
      splits: entries,
      source_csv_sha256: sourceSha,
      options_sha256: optionsSha,
      images_sha256: imagesShaOf(kept),
      rejected: rejected.length,
      created: new Date().toISOString(),
      versions: await versions(),
      preprocessing,
      source_csv: options.csvSource,
      rejected_file: REJECTED_FILE,
      ...(options.review ? { review: options.review } : {}),
    };
    await writeManifest(buildDir, manifest);
    await replaceDirectory(buildDir, finalDir);

    const seconds = (performance.now() - phases.started) / 1000;
    summarise(log, manifest, rejected, input.items.length, seconds, out);
    return { pointer, manifest, upToDate: false, rejected, seconds };
  } finally {
    await rm(buildDir, { recursive: true, force: true });
    untrackTemp(buildDir);
  }
}

let versionCache: Record<string, string> | undefined;
async function versions(): Promise<Record<string, string>> {
  if (!versionCache) {
    versionCache = {
      '@imgpipe/prep-data': packageVersion(new URL('../package.json', import.meta.url)),
      node: process.version,
      ...(await imageEngineVersions()),
    };
  }
  return versionCache;
}
