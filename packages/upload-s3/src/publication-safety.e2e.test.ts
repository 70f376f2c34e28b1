import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdir, open, readFile, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import { execa } from 'execa';
import { downloadPublication, headObject, listObjects, readObjectBytes, uploadObject } from '@imgpipe/s3';
import { sha256, writeJsonAtomic, type PublicationManifest } from '@imgpipe/kit';
import { makeTempDir, startS3Server, waitFor, type S3Request, type S3Server, type TempDir } from '@imgpipe/test-utils';

// The real bin, which imports dist/: run `npx tsc -b` first.
const BIN = fileURLToPath(new URL('../bin/upload-s3.js', import.meta.url));

/** A minimal run directory (the bin only moves files): model/card.json, model/head/model.json, results.csv. */
async function writeRun(dir: string, results: string): Promise<void> {
  await mkdir(join(dir, 'model', 'head'), { recursive: true });
  await writeJsonAtomic(join(dir, 'model', 'card.json'), { format: 'imgpipe-model/1', labels: ['cat', 'dog'] });
  await writeFile(join(dir, 'model', 'head', 'model.json'), '{}');
  await writeFile(join(dir, 'results.csv'), results);
}

describe('upload-s3 (the bin): what it deletes, who publishes, what it commits', () => {
  let server: S3Server;
  let loose: S3Server;
  let temp: TempDir;
  let hook: ((request: S3Request) => Promise<void> | void) | undefined;
  const run = (target: S3Server, args: string[]) =>
    execa('node', [BIN, ...args], { cwd: temp.path, env: { ...target.env, NODE_NO_WARNINGS: '1' }, reject: false });
  const keysOf = async (target: S3Server, bucket: string, prefix = '') => {
    const keys: string[] = [];
    for await (const object of listObjects(target.client, bucket, prefix ? { prefix } : {})) keys.push(object.key);
    return keys.sort();
  };
  /** The committed publication, downloaded and verified object by object against its manifest (as serve does). */
  const verified = async (target: S3Server, bucket: string, prefix: string) => {
    const dest = join(temp.path, `check-${Math.random().toString(36).slice(2)}`);
    const { manifest } = await downloadPublication(target.client, bucket, prefix, dest);
    return manifest;
  };

  before(async () => {
    server = await startS3Server({ beforeRequest: (request) => hook?.(request) });
    loose = await startS3Server({ conditionalWrites: false, beforeRequest: (request) => hook?.(request) });
    temp = await makeTempDir();
    await writeRun(join(temp.path, 'runs', 'a'), 'val_accuracy\n0.9\n');
    await writeRun(join(temp.path, 'runs', 'b'), 'val_accuracy\n0.8\n');
  });
  after(async () => {
    await server.close();
    await loose.close();
    await temp.remove();
  });

  for (const prefix of ['data/', '']) {
    it(`deletes only what an earlier publication listed, never others' objects (--prefix '${prefix}')`, async () => {
      const bucket = `shared${prefix ? '-data' : '-root'}`;
      await server.createBucket(bucket);
      const theirs = ['p/partners.csv', 'model/legacy.h5', 'results.csv', 'plots/sales.png', 'report.html', 'load_model.mjs', 'notes.txt'].map(
        (n) => prefix + n,
      );
      for (const key of theirs) await uploadObject(server.client, bucket, key, { bytes: `theirs: ${key}` });

      const first = await run(server, ['--run', 'runs/a', '--bucket', bucket, '--prefix', prefix]);
      assert.equal(first.exitCode, 0, first.stderr);
      const firstId = (JSON.parse(first.stdout) as { id: string }).id;
      assert.deepEqual(
        await keysOf(server, bucket),
        [
          ...theirs,
          `${prefix}publication.json`,
          ...['load_model.mjs', 'model/card.json', 'model/head/model.json', 'results.csv'].map((n) => `${prefix}p/${firstId}/${n}`),
        ].sort(),
      );

      const second = await run(server, ['--run', 'runs/b', '--bucket', bucket, '--prefix', prefix]);
      assert.equal(second.exitCode, 0, second.stderr);
      const manifest = await verified(server, bucket, prefix);
      const keys = await keysOf(server, bucket);
      for (const key of theirs) assert.ok(keys.includes(key), `${key} survives`);
      assert.deepEqual(
        keys.filter((k) => k.includes(`p/${firstId}/`)),
        [],
        'the first publication, which the manifest listed, is removed',
      );
      assert.deepEqual(
        keys.filter((k) => !theirs.includes(k)),
        [`${prefix}publication.json`, ...manifest.objects.map((o) => prefix + o.key)].sort(),
      );
      for (const key of theirs) assert.equal((await readObjectBytes(server.client, bucket, key)).toString(), `theirs: ${key}`);
    });
  }

  it('removes the pre-manifest flat layout only where imgpipe metadata proves it was upload-s3s', async () => {
    const bucket = 'flat';
    await server.createBucket(bucket);
    const ours = ['results.csv', 'load_model.mjs', 'model/card.json', 'plots/old.png'].map((n) => `old/${n}`);
    for (const key of ours) await uploadObject(server.client, bucket, key, { bytes: 'old' }, { metadata: { sha256: sha256('old') } });
    await uploadObject(server.client, bucket, 'old/model/theirs.h5', { bytes: 'theirs' });
    const result = await run(server, ['--run', 'runs/a', '--bucket', bucket, '--prefix', 'old/']);
    assert.equal(result.exitCode, 0, result.stderr);
    const manifest = await verified(server, bucket, 'old/');
    assert.deepEqual(
      await keysOf(server, bucket),
      ['old/model/theirs.h5', 'old/publication.json', ...manifest.objects.map((o) => `old/${o.key}`)].sort(),
    );
  });

  it('a second publisher to the prefix exits 75 while the first holds the lease; the committed publication verifies', async () => {
    const bucket = 'race';
    await server.createBucket(bucket);
    hook = async (request) => {
      if (request.bucket === bucket && request.key.includes('/p/')) await sleep(150);
    };
    try {
      const first = run(server, ['--run', 'runs/a', '--bucket', bucket, '--prefix', 'models/', '--concurrency', '1']);
      await waitFor(
        async () => (await headObject(server.client, bucket, 'models/publication.lock')) !== undefined,
        'the first publisher to take the lease',
      );
      const second = await run(server, ['--run', 'runs/b', '--bucket', bucket, '--prefix', 'models/']);
      const winner = await first;
      assert.equal(winner.exitCode, 0, winner.stderr);
      assert.equal(second.exitCode, 75, second.stderr);
      assert.match(second.stderr, /s3:\/\/race\/models\/publication\.lock: another publisher holds this prefix \(upload-s3 pid \d+/);
      const manifest = await verified(server, bucket, 'models/');
      assert.equal(manifest.id, (JSON.parse(winner.stdout) as { id: string }).id);
      assert.equal(await headObject(server.client, bucket, 'models/publication.lock'), undefined, 'the lease is released');
    } finally {
      hook = undefined;
    }
  });

  it('the lease of a publisher that died (expired, or its process on this host gone) is taken over', async () => {
    const bucket = 'stale';
    await server.createBucket(bucket);
    const dead = {
      format: 'imgpipe-publication-lease/1',
      token: 'dead',
      tool: 'upload-s3',
      pid: 1,
      hostname: 'gone',
      acquired: '2026-01-01T00:00:00.000Z',
      expires: '2026-01-01T00:10:00.000Z',
    };
    await uploadObject(server.client, bucket, 'm/publication.lock', { bytes: JSON.stringify(dead) });
    const result = await run(server, ['--run', 'runs/a', '--bucket', bucket, '--prefix', 'm/']);
    assert.equal(result.exitCode, 0, result.stderr);
    assert.match(result.stderr, /taking over the lease of a publisher that stopped renewing it \(upload-s3 pid 1 on gone/);
    await verified(server, bucket, 'm/');

    // Unexpired, but held by a process of this host that is gone (killed with SIGKILL, say).
    const gone = execa('node', ['-e', '']);
    await gone;
    const killed = { ...dead, token: 'killed', pid: gone.pid, hostname: hostname(), expires: new Date(Date.now() + 600_000).toISOString() };
    await uploadObject(server.client, bucket, 'm/publication.lock', { bytes: JSON.stringify(killed) });
    const again = await run(server, ['--run', 'runs/b', '--bucket', bucket, '--prefix', 'm/']);
    assert.equal(again.exitCode, 0, again.stderr);
    assert.match(again.stderr, /taking over the lease of a publisher that is no longer running/);
  });

  it('a publisher whose lease was taken over while it uploaded commits nothing and exits 75', async () => {
    const bucket = 'taken';
    await server.createBucket(bucket);
    const other = {
      format: 'imgpipe-publication-lease/1',
      token: 'other',
      tool: 'upload-s3',
      pid: 1,
      hostname: 'elsewhere',
      acquired: new Date().toISOString(),
      expires: new Date(Date.now() + 600_000).toISOString(),
    };
    let taken = false;
    hook = async (request) => {
      if (request.bucket === bucket && request.key.includes('/p/') && !taken) {
        taken = true; // as a publisher that found this one's lease expired would
        await uploadObject(server.client, bucket, 'm/publication.lock', { bytes: JSON.stringify(other) });
      }
    };
    try {
      const result = await run(server, ['--run', 'runs/a', '--bucket', bucket, '--prefix', 'm/']);
      assert.ok(taken);
      assert.equal(result.exitCode, 75, result.stderr);
      assert.match(result.stderr, /m\/publication\.lock: the lease was lost before the commit \(upload-s3 pid 1 on elsewhere/);
      assert.equal(await headObject(server.client, bucket, 'm/publication.json'), undefined, 'nothing committed');
      assert.equal(
        JSON.parse((await readObjectBytes(server.client, bucket, 'm/publication.lock')).toString()).token,
        'other',
        "the other's lease is left alone",
      );
    } finally {
      hook = undefined;
    }
  });

  it('where the store ignores conditional writes, two publishers at once still leave a publication that verifies', async () => {
    const bucket = 'loose';
    await loose.createBucket(bucket);
    hook = async (request) => {
      if (request.bucket === bucket && request.key.includes('/p/')) await sleep(40);
    };
    try {
      for (let round = 0; round < 3; round++) {
        const results = await Promise.all([
          run(loose, ['--run', 'runs/a', '--bucket', bucket, '--prefix', 'models/', '--concurrency', '1']),
          run(loose, ['--run', 'runs/b', '--bucket', bucket, '--prefix', 'models/', '--concurrency', '1']),
        ]);
        for (const result of results) assert.ok(result.exitCode === 0 || result.exitCode === 75, `exit ${result.exitCode}: ${result.stderr}`);
        assert.ok(
          results.some((r) => r.exitCode === 0),
          'one of them published',
        );
        assert.match(results.map((r) => r.stderr).join('\n'), /ignores conditional writes/);
        await verified(loose, bucket, 'models/');
      }
    } finally {
      hook = undefined;
    }
  });

  it('a file rewritten while it is being uploaded is not committed under the hash it had before', async () => {
    const bucket = 'nine';
    await server.createBucket(bucket);
    await writeRun(join(temp.path, 'runs', 'nine'), 'val_accuracy\n0.7\n');
    const results = join(temp.path, 'runs', 'nine', 'results.csv');
    let rewritten = false;
    hook = async (request) => {
      if (request.bucket === bucket && request.key.endsWith('/results.csv') && !rewritten) {
        rewritten = true;
        await writeFile(results, 'val_accuracy\n0.1\n');
      }
    };
    try {
      const result = await run(server, ['--run', 'runs/nine', '--bucket', bucket, '--prefix', 'm/', '--concurrency', '1']);
      assert.ok(rewritten, 'the file was rewritten during the upload');
      const manifest = await readObjectBytes(server.client, bucket, 'm/publication.json').then(
        (b) => JSON.parse(b.toString()) as PublicationManifest,
        () => undefined,
      );
      if (manifest) {
        // Committed: then every hash it lists is the stored object's.
        for (const object of manifest.objects)
          assert.equal(sha256(await readObjectBytes(server.client, bucket, `m/${object.key}`)), object.sha256, object.name);
      } else {
        assert.equal(result.exitCode, 1, result.stderr);
        assert.match(result.stderr, /runs\/nine\/results\.csv changed while it was being uploaded/);
      }
      assert.notEqual(result.exitCode, 0, 'a publication of a file that changed meanwhile is not reported as a success');
    } finally {
      hook = undefined;
    }
  });

  it('a large file rewritten while its parts are being sent is deleted, not committed', async () => {
    const bucket = 'nine-big';
    await server.createBucket(bucket);
    const dir = join(temp.path, 'runs', 'nine-big');
    await writeRun(dir, 'val_accuracy\n0.7\n');
    await mkdir(join(dir, 'plots'));
    const big = join(dir, 'plots', 'big.png');
    await writeFile(big, randomBytes(26 * 1024 * 1024));
    let rewritten = false;
    hook = async (request) => {
      if (request.bucket === bucket && request.query.has('partNumber') && !rewritten) {
        rewritten = true;
        const handle = await open(big, 'r+');
        await handle.write(randomBytes(512 * 1024), 0, 512 * 1024, 26 * 1024 * 1024 - 512 * 1024);
        await handle.close();
      }
    };
    try {
      const result = await run(server, ['--run', 'runs/nine-big', '--bucket', bucket, '--prefix', 'm/', '--concurrency', '1', '--part-size', '5']);
      assert.ok(rewritten, 'the file was rewritten during the upload');
      assert.equal(result.exitCode, 1, result.stderr);
      assert.match(result.stderr, /plots\/big\.png changed while it was being uploaded/);
      assert.equal(await headObject(server.client, bucket, 'm/publication.json'), undefined, 'nothing committed');
      assert.deepEqual(
        (await keysOf(server, bucket, 'm/')).filter((k) => k.endsWith('big.png')),
        [],
        'the object sent with the wrong content is deleted',
      );

      // Left alone, the same file goes up in parts, its ETag checked against the bytes sent, and is committed true.
      const again = await run(server, ['--run', 'runs/nine-big', '--bucket', bucket, '--prefix', 'm/', '--part-size', '5']);
      assert.equal(again.exitCode, 0, again.stderr);
      const manifest = await verified(server, bucket, 'm/');
      assert.equal(manifest.objects.find((o) => o.name === 'plots/big.png')?.sha256, sha256(await readFile(big)));
    } finally {
      hook = undefined;
    }
  });

  it('a prefix too long for S3 keys exits 2 naming it, before sending anything', async () => {
    const bucket = 'long';
    await server.createBucket(bucket);
    const prefix = `${'x'.repeat(1100)}/`;
    const result = await run(server, ['--run', 'runs/a', '--bucket', bucket, '--prefix', prefix]);
    assert.equal(result.exitCode, 2, result.stderr);
    assert.match(result.stderr, /--prefix "s3:\/\/long\/xxxx.*\(1101 bytes\) is too long: .* S3 allows 1024/);
    assert.deepEqual(await keysOf(server, bucket), []);
  });
});
