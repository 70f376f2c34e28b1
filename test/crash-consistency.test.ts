// Crash consistency, in the spirit of storage systems' tests: each tool is killed with SIGKILL at seeded random
// moments of a run, then rerun. After every kill, whatever carries a final name must be complete and verify (no
// reader may accept a half-written artifact); after the rerun, the outputs must equal an uninterrupted run's and
// no temp file or lock may be left. Bounded: KILLS per tool, delays within the uninterrupted run's duration.
import assert from 'node:assert/strict';
import { mkdir, readdir, readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { execa } from 'execa';
import { createRng, openDataset, sha256, SPLIT_NAMES, walkDir } from '@imgpipe/kit';
import { BIN, CSV_URI, startPipelineFixture, type PipelineFixture } from './pipeline-fixture.js';

const KILLS = 6;
const RETRIES_AFTER_THE_END = 3;
const LITTER = /\.tmp$|\.lock$/;

/** Every path under dir (directories too), relative; none when it does not exist. */
async function walk(dir: string): Promise<string[]> {
  return (await walkDir(dir).catch(() => [])).map((e) => e.path);
}

async function litter(dir: string): Promise<string[]> {
  return (await walk(dir)).filter((path) => LITTER.test(path));
}

describe('crash consistency: kill -9 at seeded moments, rerun, compare with an uninterrupted run', () => {
  let fx: PipelineFixture;
  const bin = (tool: string, args: string[], cwd: string, input?: string) =>
    execa(join(BIN, tool), args, { cwd, env: fx.env, reject: false, ...(input === undefined ? {} : { input }) });

  /** Run `start` once to time it, then KILLS times killed at a random moment and rerun each time. */
  async function killAndRerun(
    tool: string,
    seed: number,
    start: (cwd: string) => ReturnType<typeof bin>,
    checkKilled: (cwd: string) => Promise<void>,
    checkDone: (cwd: string, stdout: string) => Promise<void>,
  ) {
    const reference = join(fx.temp.path, `${tool}-reference`);
    await mkdir(reference, { recursive: true });
    const t0 = Date.now();
    const whole = await start(reference);
    assert.equal(whole.exitCode, 0, whole.stderr);
    const duration = Date.now() - t0;
    const rng = createRng(seed);
    let killedMidway = 0;
    for (let k = 0; k < KILLS; k++) {
      // Later runs are often faster than the timed first one (warm caches): a kill that lands after the end is tried
      // again at half the delay in a fresh directory, so that the kills land midway on a fast machine too.
      let delay = Math.floor(rng() * duration);
      let cwd = '';
      for (let attempt = 0; attempt <= RETRIES_AFTER_THE_END; attempt++) {
        if (attempt > 0) delay = Math.floor(delay / 2);
        cwd = join(fx.temp.path, `${tool}-kill-${k}-${attempt}`);
        await mkdir(cwd, { recursive: true });
        const child = start(cwd);
        await new Promise((r) => setTimeout(r, delay));
        child.kill('SIGKILL');
        const killed = await child;
        await checkKilled(cwd);
        if (killed.signal === 'SIGKILL') {
          killedMidway += 1;
          break;
        }
      }
      const rerun = await start(cwd);
      assert.equal(rerun.exitCode, 0, `${tool} rerun after a kill at ${delay} ms: ${rerun.stderr}`);
      await checkDone(cwd, rerun.stdout);
      assert.deepEqual(await litter(cwd), [], `${tool}: no temp file or lock left after the rerun (kill at ${delay} ms)`);
    }
    assert.ok(killedMidway >= KILLS / 2, `${tool}: ${killedMidway} of ${KILLS} kills landed before the end`);
    return reference;
  }

  before(async () => {
    fx = await startPipelineFixture('crash', 40);
  });
  after(() => fx?.close());

  it('download-s3', async () => {
    const objects = new Map(fx.set.images.map((row) => [row.s3_image, row]));
    const sourceSha = async (key: string) => sha256(await readFile(join(fx.set.dir, objects.get(key)!.file)));
    const start = (cwd: string) => bin('download-s3', ['--csv', CSV_URI, '--dest', 'data', '--out', 'images.csv', '--concurrency', '4'], cwd);
    const checkKilled = async (cwd: string) => {
      for (const path of await walk(join(cwd, 'data'))) {
        if (LITTER.test(path) || (!path.endsWith('.png') && !path.endsWith('.jpg') && !path.endsWith('.webp'))) continue;
        const key = path;
        if (objects.has(key))
          assert.equal(sha256(await readFile(join(cwd, 'data', path))), await sourceSha(key), `${path}: a final name holds complete bytes`);
      }
      const csv = await readFile(join(cwd, 'images.csv'), 'utf8').catch(() => undefined);
      assert.ok(csv === undefined || csv.trim().split('\n').length === objects.size + 1, 'the output CSV is whole or absent');
    };
    const reference = await killAndRerun('download-s3', 11, start, checkKilled, async (cwd) => {
      assert.equal(
        await readFile(join(cwd, 'images.csv'), 'utf8'),
        await readFile(join(fx.temp.path, 'download-s3-reference', 'images.csv'), 'utf8'),
      );
    });
    assert.ok((await readFile(join(reference, 'images.csv'), 'utf8')).includes('local_sha256'));
  });

  it('prep-data', async () => {
    const csvDir = join(fx.temp.path, 'download-s3-reference');
    // local_image paths are relative to the download's directory: prep-data runs there, each build in its own --out.
    const startIn = (cwd: string) => bin('prep-data', ['--csv', 'images.csv', '--out', join(cwd, 'prep'), '--concurrency', '2'], csvDir);
    const verified = async (dir: string) => {
      const dataset = await openDataset(dir);
      for (const split of SPLIT_NAMES) {
        assert.equal(sha256(await readFile(dataset.pixelsPath(split))), dataset.manifest.splits[split].pixels.sha256);
        await dataset.rows(split);
      }
      return dataset.manifest;
    };
    await killAndRerun(
      'prep-data',
      12,
      startIn,
      async (cwd) => {
        if (await readFile(join(cwd, 'prep', 'manifest.json')).catch(() => undefined)) await verified(join(cwd, 'prep'));
        assert.deepEqual(
          (await readdir(cwd)).filter((name) => name !== 'prep' && !name.startsWith('.')),
          [],
        );
      },
      async (cwd) => {
        const manifest = await verified(join(cwd, 'prep'));
        const reference = await verified(join(fx.temp.path, 'prep-data-reference', 'prep'));
        assert.deepEqual(manifest.splits, reference.splits);
        assert.equal(manifest.images_sha256, reference.images_sha256);
        assert.deepEqual(await litter(cwd), []);
      },
    );
  });

  it('train', async () => {
    const data = join(fx.temp.path, 'prep-data-reference', 'prep');
    const start = (cwd: string) => bin('train', ['--data', data, '--out', 'runs', '--seed', '5', ...fx.trainFlags], cwd);
    const table = async (runDir: string) => {
      const lines = (await readFile(join(runDir, 'trials.csv'), 'utf8'))
        .trim()
        .split('\n')
        .map((l) => l.split(','));
      const col = lines[0]!.indexOf('seconds');
      return lines.map((cells) => cells.filter((_, i) => i !== col).join(','));
    };
    const referenceRun = async () =>
      join(fx.temp.path, 'train-reference', 'runs', (await readdir(join(fx.temp.path, 'train-reference', 'runs'))).find((n) => !n.startsWith('.'))!);
    await killAndRerun(
      'train',
      13,
      start,
      async (cwd) => {
        for (const name of await readdir(join(cwd, 'runs')).catch(() => [] as string[])) {
          if (name.startsWith('.')) continue;
          const runJson = await readFile(join(cwd, 'runs', name, 'run.json'), 'utf8').catch(() => undefined);
          if (runJson !== undefined) assert.doesNotThrow(() => JSON.parse(runJson), 'run.json is whole');
          const model = await readFile(join(cwd, 'runs', name, 'model', 'card.json'), 'utf8').catch(() => undefined);
          if (model !== undefined) assert.equal(JSON.parse(runJson!).status, 'done', 'a model directory appears only with a finished run');
        }
      },
      async (cwd, stdout) => {
        const runDir = resolve(cwd, JSON.parse(stdout).path as string);
        const reference = await referenceRun();
        assert.deepEqual(await table(runDir), await table(reference));
        const [a, b] = await Promise.all([
          readFile(join(runDir, 'model', 'head', 'weights.bin')),
          readFile(join(reference, 'model', 'head', 'weights.bin')),
        ]);
        assert.ok(a.equals(b), 'the same best head');
        const runs = [];
        for (const name of (await readdir(join(cwd, 'runs'))).filter((n) => !n.startsWith('.'))) {
          if (await readFile(join(cwd, 'runs', name, 'run.json')).catch(() => undefined)) runs.push(name);
        }
        assert.equal(runs.length, 1, 'the rerun finished the killed run instead of starting another');
      },
    );
  });
});
