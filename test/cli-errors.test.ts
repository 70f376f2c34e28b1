// An error that ends a tool is one line on stderr; the stack trace only with --debug. Real bins (run `npx tsc -b`
// first) and a real process through kit's main() for errors outside the awaited work.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { runCli, type ToolCli } from '@imgpipe/kit';
import { makeTempDir, type TempDir } from '@imgpipe/test-utils';

const REPO = fileURLToPath(new URL('..', import.meta.url));
const BIN = join(REPO, 'node_modules', '.bin');
const STACK_LINE = /^\s+at /m;

function exec(command: string, args: string[], cwd: string): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd, env: { ...process.env, NODE_NO_WARNINGS: '1' }, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stderr }));
  });
}

const lines = (text: string) => text.trim().split('\n');

describe('errors end a tool with one line', () => {
  let temp: TempDir;
  before(async () => {
    temp = await makeTempDir();
    await writeFile(join(temp.path, 'a-file'), 'not a directory');
    await writeFile(
      join(temp.path, 'images.csv'),
      `bucket,s3_image,category,label,local_image\nb,k,cat,0,${join(temp.path, 'a-file')}\nb,k2,dog,1,${join(temp.path, 'images.csv')}\n`,
    );
  });
  after(() => temp?.remove());

  it('runCli: an unexpected error is one line with a hint; --debug adds the stack', async () => {
    const tool: ToolCli = {
      name: 'thrower',
      summary: 'throws',
      packageJson: new URL('../package.json', import.meta.url),
      configKeys: [],
      async run() {
        JSON.parse('{"cut short');
      },
    };
    const run = async (argv: string[]) => {
      const stderr = new PassThrough();
      let text = '';
      stderr.on('data', (chunk: Buffer) => (text += chunk.toString()));
      const code = await runCli(tool, argv, { stdin: new PassThrough(), stdout: new PassThrough(), stderr, env: {}, cwd: temp.path });
      return { code, stderr: text };
    };
    const plain = await run([]);
    assert.equal(plain.code, 1);
    assert.equal(lines(plain.stderr).length, 1, plain.stderr);
    assert.match(plain.stderr, /^thrower: error: .*JSON.* \(unexpected; run again with --debug for the stack trace\)\n$/);
    const debug = await run(['--debug']);
    assert.match(debug.stderr, STACK_LINE);
  });

  for (const [tool, flag] of [
    ['prep-data', '--out'],
    ['download-s3', '--dest'],
  ] as const) {
    it(`${tool} ${flag} below a file: exit 2, one line naming the flag, no stack trace`, async () => {
      const args =
        tool === 'prep-data'
          ? ['--csv', 'images.csv', '--out', 'a-file/prep', '-q']
          : ['--csv', 'images.csv', '--dest', 'a-file/data', '--bucket', 'b'];
      const result = await exec(join(BIN, tool), args, temp.path);
      assert.equal(result.code, 2, result.stderr);
      assert.doesNotMatch(result.stderr, STACK_LINE);
      assert.equal(lines(result.stderr).length, 1, result.stderr);
      assert.match(
        result.stderr,
        new RegExp(`^${tool}: error: ${flag} \\S*a-file/\\w+: cannot create the directory \\S*a-file: a file is in the way`),
      );
    });
  }

  it('eval-model --model s3://...: exit 2, one line saying to copy the model directory first', async () => {
    const result = await exec(join(BIN, 'eval-model'), ['--model', 's3://bucket/models/cat-dog', '--data', 'prep'], temp.path);
    assert.equal(result.code, 2, result.stderr);
    assert.equal(lines(result.stderr).length, 1, result.stderr);
    assert.match(
      result.stderr,
      /^eval-model: error: --model s3:\/\/bucket\/models\/cat-dog: eval-model reads a local model directory; copy it first \(aws s3 cp --recursive/,
    );
  });

  it("kit's main: an error outside the awaited work (an unhandled 'error' event) is one line too, exit 1", async () => {
    const script = join(temp.path, 'stray-error.mts');
    await writeFile(
      script,
      [
        `import { EventEmitter } from 'node:events';`,
        `import { main } from ${JSON.stringify(join(REPO, 'packages', 'kit', 'src', 'index.ts'))};`,
        `await main({ name: 'stray', summary: 'x', packageJson: new URL(${JSON.stringify(`file://${join(REPO, 'package.json')}`)}), configKeys: [],`,
        `  async run() { setTimeout(() => new EventEmitter().emit('error', new Error('nobody listened')), 10); await new Promise((r) => setTimeout(r, 2000)); } });`,
      ].join('\n'),
    );
    const tsx = fileURLToPath(import.meta.resolve('tsx'));
    const plain = await exec(process.execPath, ['--conditions=imgpipe-source', '--import', tsx, script], temp.path);
    assert.equal(plain.code, 1, plain.stderr);
    assert.doesNotMatch(plain.stderr, STACK_LINE);
    assert.equal(lines(plain.stderr).length, 1, plain.stderr);
    assert.match(plain.stderr, /^stray: error: nobody listened \(unexpected; run again with --debug/);
    const debug = await exec(process.execPath, ['--conditions=imgpipe-source', '--import', tsx, script, '--debug'], temp.path);
    assert.match(debug.stderr, STACK_LINE);
  });
});
