import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { test } from 'node:test';

const READ_ALL = new URL('./read-all.ts', import.meta.url).href;

test('readAll reads all of a piped stdin that arrives in several chunks, byte for byte', async () => {
  // A child that reads its stdin with readAll and echoes the length and the bytes' hex on stdout.
  const code = `import { readAll } from ${JSON.stringify(READ_ALL)}; const b = await readAll(process.stdin); process.stdout.write(b.length + ' ' + b.toString('hex'));`;
  const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', code], { stdio: ['pipe', 'pipe', 'inherit'] });
  const out: Buffer[] = [];
  child.stdout.on('data', (chunk: Buffer) => out.push(chunk));
  const exited = new Promise<number | null>((resolve) => child.on('close', resolve));
  const parts = [randomBytes(70_000), Buffer.from('ü猫\n'), randomBytes(3), randomBytes(200_000)];
  for (const part of parts) {
    child.stdin.write(part);
    await sleep(20); // separate writes, so the reader sees separate chunks
  }
  child.stdin.end();
  assert.equal(await exited, 0);
  const expected = Buffer.concat(parts);
  assert.equal(Buffer.concat(out).toString(), `${expected.length} ${expected.toString('hex')}`);
});
