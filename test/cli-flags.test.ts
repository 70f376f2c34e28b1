// Every tool declares and validates its flags one way (kit's value parser), echoes the user's text in errors,
// answers --version, accepts --debug and --project-name, and validates only the configuration keys it reads.
import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { describe, it } from 'node:test';
import { downloadS3Cli } from '@imgpipe/download-s3';
import { evalModelCli } from '@imgpipe/eval';
import { packageVersion, runCli, type ToolCli } from '@imgpipe/kit';
import { prepDataCli } from '@imgpipe/prep-data';
import { reviewLabelsCli } from '@imgpipe/review-labels';
import { serveCli } from '@imgpipe/serve';
import { trainCli } from '@imgpipe/train';
import { uploadS3Cli } from '@imgpipe/upload-s3';

const TOOLS: ToolCli[] = [downloadS3Cli, prepDataCli, trainCli, evalModelCli, serveCli, uploadS3Cli, reviewLabelsCli];
/** Flags a tool requires, so that parsing reaches the flag under test. */
const REQUIRED: Record<string, string[]> = { serve: ['--model', 'model/'] };

async function run(tool: ToolCli, argv: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  let out = '';
  let err = '';
  stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
  stderr.on('data', (chunk: Buffer) => (err += chunk.toString()));
  const stdin = Object.assign(new PassThrough(), { isTTY: true });
  const code = await runCli(tool, argv, { stdin, stdout, stderr, env, cwd: '/nonexistent-imgpipe-cwd' });
  return { code, stdout: out, stderr: err };
}

describe('flags, the same in every tool', () => {
  for (const tool of TOOLS) {
    it(`${tool.name}: a typed flag given bad text exits 2 and echoes the text`, async () => {
      const typed = Object.entries(tool.options ?? {}).filter(
        ([, option]) => option.value && option.value.type !== 'bool' && option.value.type !== 'string',
      );
      assert.ok(typed.length > 0, `${tool.name} has typed flags`);
      for (const [name] of typed) {
        const result = await run(tool, [...(REQUIRED[tool.name] ?? []), `--${name}`, 'abc']);
        assert.equal(result.code, 2, `${tool.name} --${name} abc: ${result.stderr}`);
        assert.match(result.stderr, new RegExp(`expected --${name} to be .*, got 'abc'`), result.stderr);
      }
    });

    it(`${tool.name}: --version prints the package version; --debug and --project-name are accepted`, async () => {
      const version = await run(tool, ['--version']);
      assert.equal(version.code, 0, version.stderr);
      assert.equal(version.stdout.trim(), packageVersion(tool.packageJson));
      const shared = await run(tool, ['--debug', '--project-name', 'cats', '--help']);
      assert.equal(shared.code, 0, shared.stderr);
      assert.match(shared.stdout, /--project-name/);
      assert.match(shared.stdout, /--debug/);
      assert.match(shared.stdout, /--version/);
    });
  }

  it('numeric flags show their kind and range in --help', async () => {
    const help = await run(downloadS3Cli, ['--help']);
    assert.match(help.stdout, /--concurrency[\s\S]*\[integer >= 1\]/);
  });

  it('a variable meant for one tool does not stop another; the tool that reads it reports it', async () => {
    const env = { IMGPIPE_TRAIN_EPOCHS: 'x' };
    const upload = await run(uploadS3Cli, ['--run', '/nonexistent-imgpipe-run'], env);
    assert.doesNotMatch(upload.stderr, /IMGPIPE_TRAIN_EPOCHS/);
    const train = await run(trainCli, ['--data', '/nonexistent-imgpipe-data'], env);
    assert.equal(train.code, 2);
    assert.match(train.stderr, /expected IMGPIPE_TRAIN_EPOCHS to be an integer >= 1, got 'x'/);
  });
});

describe('train --list-backbones', () => {
  it('prints the four built-ins with their cache state and sources, and exits 0', async () => {
    const result = await run(trainCli, ['--list-backbones', '--cache-dir', '/nonexistent-imgpipe-cache']);
    assert.equal(result.code, 0, result.stderr);
    for (const name of ['resnet50 (default)', 'resnet50-int8', 'mobilenetv2', 'efficientnet-lite4'])
      assert.ok(result.stdout.includes(`\n${name}: `) || result.stdout.startsWith(`${name}: `), name);
    assert.equal(result.stdout.match(/not cached \(would be \/nonexistent-imgpipe-cache\/backbones\//g)?.length, 4);
    assert.equal(result.stdout.match(/source 1: https:\/\/huggingface\.co\//g)?.length, 4);
  });
});
