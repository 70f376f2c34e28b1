// downloadPublication (what serve --model s3:// and load_model.mjs's reader rely on) when an object is missing while
// others are still arriving: it fails naming the object, and only after every download has settled does it remove
// its destination, so nothing is left behind and the removal never races a file still being written.
import assert from 'node:assert/strict';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, it } from 'node:test';
import { deleteObjects, downloadPublication, joinKey } from '@imgpipe/s3';
import { exists } from '@imgpipe/kit';
import { makeTempDir, publishModelDir, startS3Server, type S3Server, type TempDir } from '@imgpipe/test-utils';

let server: S3Server;
let temp: TempDir;
let slow = '';

before(async () => {
  server = await startS3Server({
    beforeRequest: async (request) => {
      if (request.method === 'GET' && slow && request.key.endsWith(slow)) await new Promise((resolve) => setTimeout(resolve, 400));
    },
  });
  temp = await makeTempDir('imgpipe-pub-download-');
  await server.createBucket('pub');
});
after(async () => {
  await server.close();
  await temp.remove();
});

it('a missing object fails the download after the others settle, and leaves no destination behind', async () => {
  const model = join(temp.path, 'model');
  await mkdir(model, { recursive: true });
  for (let i = 0; i < 12; i++) await writeFile(join(model, `part-${String(i).padStart(2, '0')}.bin`), Buffer.alloc(64 * 1024, i));
  const manifest = await publishModelDir(server.client, 'pub', 'm/', model);
  const gone = manifest.objects.find((o) => o.name.endsWith('part-00.bin'))!;
  await deleteObjects(server.client, 'pub', [joinKey('m/', gone.key)]);
  slow = '.bin'; // every other object arrives late: still being written when the missing one fails
  const dest = join(temp.path, 'dest');
  await assert.rejects(downloadPublication(server.client, 'pub', 'm/', dest, { attempts: 1 }), (error: Error) =>
    error.message.includes('part-00.bin'),
  );
  await new Promise((resolve) => setTimeout(resolve, 1000)); // anything still in flight would land now
  assert.equal(await exists(dest), false, 'the destination is removed, after the last download settled');
});
