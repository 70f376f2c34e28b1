// A full disk (issue 24): the error names the file being written, exits 1 without a stack trace, and leaves no
// partial file. The disk is a small tmpfs mounted in a private mount namespace (`unshare -rm`: a user namespace
// where the test is root, so no real root is needed where unprivileged user namespaces are allowed).
import assert from 'node:assert/strict';
import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, test } from 'node:test';
import { execa } from 'execa';
import { generateImageSet, makeTempDir, TINY_IMAGE_SIZES, type TempDir } from '@imgpipe/test-utils';

// The real bins (dist/): run `npx tsc -b` before the tests.
const PREP_DATA = fileURLToPath(new URL('../packages/prep-data/bin/prep-data.js', import.meta.url));
const KIT = fileURLToPath(new URL('../packages/kit/dist/index.js', import.meta.url));

let temp: TempDir;
let csvPath: string;
let disk: string;

/** Run `command` with a `size` tmpfs mounted at `disk`, then list what is left on it (after a marker line). */
const onFullDisk = (size: string, command: string, env: Record<string, string> = {}) =>
  execa(
    'unshare',
    [
      '-rm',
      'sh',
      '-c',
      `mount -t tmpfs -o size=${size} tmpfs "$DISK" && ${command}; code=$?; echo "--- left:"; find "$DISK" -mindepth 1; exit $code`,
    ],
    {
      env: { ...process.env, ...env, DISK: disk },
      reject: false,
    },
  );

before(async () => {
  temp = await makeTempDir('imgpipe-disk-full-');
  csvPath = (await generateImageSet({ dir: join(temp.path, 'images'), count: 40, seed: 3, sizes: TINY_IMAGE_SIZES })).csvPath;
  disk = join(temp.path, 'disk');
  await mkdir(disk);
});
after(() => temp.remove());

test('prep-data on a full disk names the file it could not write and leaves nothing behind', async () => {
  const result = await onFullDisk('40k', `node "${PREP_DATA}" --csv "${csvPath}" --out "$DISK/prep" --img-dimensions 32 --quiet`);
  assert.equal(result.exitCode, 1, result.stderr);
  assert.match(result.stderr, new RegExp(`prep-data: error: ${disk}/\\S+\\.u8: cannot write: no space left on the device`));
  assert.doesNotMatch(result.stderr, /^\s+at /m, 'no stack trace without --debug');
  assert.equal(result.stdout.split('--- left:')[1]?.trim(), '', 'no partial dataset or temp directory left');
});

test("kit's atomic write on a full disk names the file, and the final name never holds a partial file", async () => {
  const script = `import { writeFileAtomic } from ${JSON.stringify(KIT)};
    await writeFileAtomic(process.env.DISK + '/big.bin', new Uint8Array(200_000)).catch((error) => { console.error(error.message, error.code); process.exitCode = 1; });`;
  const result = await onFullDisk('64k', 'node --input-type=module -e "$SCRIPT"', { SCRIPT: script });
  assert.equal(result.exitCode, 1, result.stderr);
  assert.match(
    result.stderr,
    new RegExp(`^${disk}/big\\.bin: cannot write: no space left on the device; free space there, or write elsewhere ENOSPC$`, 'm'),
  );
  assert.equal(result.stdout.split('--- left:')[1]?.trim(), '');
  assert.ok((await readFile(csvPath)).length > 0);
});
