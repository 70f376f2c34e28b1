import assert from 'node:assert/strict';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { execa } from 'execa';
import { listObjects } from '@imgpipe/s3';
import { writeJsonAtomic } from '@imgpipe/kit';
import { makeTempDir, startS3Server, type S3Server, type TempDir } from '@imgpipe/test-utils';

// The real bin, which imports dist/: run `npx tsc -b` first.
const BIN = fileURLToPath(new URL('../bin/upload-s3.js', import.meta.url));

describe('upload-s3 (the bin, end to end)', () => {
  let server: S3Server;
  let temp: TempDir;
  const run = (args: string[], input?: string) =>
    execa('node', [BIN, ...args], { cwd: temp.path, env: { ...server.env, NODE_NO_WARNINGS: '1' }, reject: false, ...(input === undefined ? {} : { input }) });

  before(async () => {
    server = await startS3Server();
    temp = await makeTempDir();
    await server.createBucket('pub');
    // A minimal run directory: the bin only moves files, so the model files need not be loadable here.
    await mkdir(join(temp.path, 'runs', 'r', 'model', 'head'), { recursive: true });
    await writeJsonAtomic(join(temp.path, 'runs', 'r', 'model', 'card.json'), { format: 'imgpipe-model/1', labels: ['cat', 'dog'] });
    await writeFile(join(temp.path, 'runs', 'r', 'model', 'head', 'model.json'), '{}');
    await writeFile(join(temp.path, 'runs', 'r', 'results.csv'), 'val_accuracy\n0.9\n');
  });
  after(async () => {
    await server.close();
    await temp.remove();
  });

  it('publishes a run named by a pointer on stdin, then by --run, and prints one pointer line', async () => {
    const piped = await run(['--bucket', 'pub', '--prefix', 'results/'], `${JSON.stringify({ kind: 'run', path: 'runs/r', best: 'runs/r/model' })}\n`);
    assert.equal(piped.exitCode, 0, piped.stderr);
    const pointer = JSON.parse(piped.stdout) as { kind: string; uploaded: number; objects: string[] };
    assert.equal(pointer.kind, 'upload');
    assert.equal(pointer.uploaded, 4);
    const keys: string[] = [];
    for await (const object of listObjects(server.client, 'pub', { prefix: 'results/' })) keys.push(object.key);
    assert.deepEqual(keys.sort(), ['results/load_model.mjs', 'results/model/card.json', 'results/model/head/model.json', 'results/results.csv']);

    const again = await run(['--run', 'runs/r', '--prefix', 's3://pub/results/']);
    assert.equal(again.exitCode, 0, again.stderr);
    assert.equal((JSON.parse(again.stdout) as { uploaded: number }).uploaded, 0);
    assert.match(again.stderr, /4 already there/);
  });

  it('exits 2 naming what is missing', async () => {
    const noBucket = await run(['--run', 'runs/r']);
    assert.equal(noBucket.exitCode, 2);
    assert.match(noBucket.stderr, /no bucket: pass --bucket/);
    const noRun = await run(['--bucket', 'pub', '--run', 'nowhere']);
    assert.equal(noRun.exitCode, 2);
    assert.match(noRun.stderr, /nowhere: no such directory/);
    const badPointer = await run(['--bucket', 'pub'], 'not a pointer\n');
    assert.equal(badPointer.exitCode, 2);
    assert.match(badPointer.stderr, /expected a JSON pointer line/);
  });
});
