// Shared by the pipeline tests (pipeline*.test.ts): a local S3 server holding generated images and their CSV in
// the seed's format, a tiny ONNX backbone, and the environment the real bins need (run `npx tsc -b` first).
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { csvString } from '@imgpipe/kit';
import { listObjects, readObjectBytes, uploadObject } from '@imgpipe/s3';
import {
  buildTinyConvBackbone,
  generateImageSet,
  makeTempDir,
  type ImageSet,
  startS3Server,
  TINY_IMAGE_SIZES,
  uploadDirectory,
  type S3Server,
  type TempDir,
  type TinyBackbone,
} from '@imgpipe/test-utils';

// The AWS SDK warns once per process on Node < 22; the tests run on Node 20 on purpose.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

export const REPO = fileURLToPath(new URL('..', import.meta.url));
export const BIN = join(REPO, 'node_modules', '.bin');
export const PIPELINE = join(REPO, 'scripts', 'pipeline.sh');
export const BUCKET = 'pipeline-test';
export const CSV_URI = `s3://${BUCKET}/images/images.csv`;
/** The same images with labels that do not depend on the image (half of each class each way): nothing can be learnt. */
export const NOISE_CSV_URI = `s3://${BUCKET}/images/noise.csv`;
export const SIZE = 24;

export interface PipelineFixture {
  temp: TempDir;
  server: S3Server;
  backbone: TinyBackbone;
  set: ImageSet;
  /** S3 endpoint and test credentials, a feature cache in the temp dir, prep-data's image size, no WebGPU probe. */
  env: Record<string, string>;
  /** train flags for the tiny backbone: a 2x2 sweep that takes a second. */
  trainFlags: string[];
  /** Keys under the prefix, sorted. */
  keys(prefix: string): Promise<string[]>;
  read(key: string): Promise<string>;
  close(): Promise<void>;
}

export async function startPipelineFixture(name: string, count = 48): Promise<PipelineFixture> {
  const temp = await makeTempDir(`imgpipe-${name}-`);
  const server = await startS3Server();
  await server.createBucket(BUCKET);
  const set = await generateImageSet({
    dir: join(temp.path, 'images'),
    count,
    seed: 8,
    sizes: TINY_IMAGE_SIZES,
    bucket: BUCKET,
    prefix: 'images',
    localImage: false,
  });
  await uploadDirectory(server.client, BUCKET, 'images', set.dir);
  const classes = ['cat', 'dog'];
  const noise = set.images.map((row, i) => ({ ...row, label: Math.floor(i / 2) % 2, category: classes[Math.floor(i / 2) % 2] }));
  await uploadObject(server.client, BUCKET, 'images/noise.csv', {
    bytes: await csvString(['bucket', 's3_image', 'category', 'label'], noise as unknown as Record<string, unknown>[]),
  });
  const backbone = await buildTinyConvBackbone({ dir: join(temp.path, 'backbone'), inputSize: SIZE, format: 'onnx', channels: [8, 16], seed: 3 });
  return {
    temp,
    server,
    backbone,
    set,
    env: {
      ...server.env,
      IMGPIPE_NO_WEBGPU: '1',
      IMGPIPE_CACHE_DIR: join(temp.path, 'cache'),
      IMGPIPE_DATA_IMG_DIMENSIONS: String(SIZE),
      AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
    },
    trainFlags: [
      '--backbone',
      backbone.path,
      '--feature-layer',
      backbone.featureLayer,
      '--device',
      'wasm',
      '--lr',
      '0.01,0.05',
      '--layer-size',
      '8,16',
      '--epochs',
      '8',
      '--batch-size',
      '8',
    ],
    async keys(prefix) {
      const keys: string[] = [];
      for await (const object of listObjects(server.client, BUCKET, { prefix })) keys.push(object.key);
      return keys.sort();
    },
    async read(key) {
      return (await readObjectBytes(server.client, BUCKET, key)).toString('utf8');
    },
    async close() {
      await server.close();
      await temp.remove();
    },
  };
}

export interface Finished {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Runs a command to its end, collecting its output (no shell unless the command is bash). */
export function runCommand(
  command: string,
  args: string[],
  options: { env: Record<string, string>; cwd?: string; timeoutMs?: number },
): Promise<Finished> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd: options.cwd ?? REPO, env: { ...process.env, ...options.env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 90_000);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

/** Parses CSV text without quoted commas (what the tools write for these files). */
export function parseSimpleCsv(text: string): Record<string, string>[] {
  const [header, ...lines] = text.trim().split(/\r?\n/);
  const columns = header!.split(',');
  return lines.map((line) => Object.fromEntries(line.split(',').map((cell, i) => [columns[i]!, cell])));
}

/**
 * A directory of the stage binaries (IMGPIPE_BIN_DIR for the Makefile and scripts/pipeline.sh) whose `train` is
 * packages/train/src/test-train-bin.ts: the real train with test hooks injected from IMGPIPE_TEST_* variables.
 */
export async function hookedBinDir(dir: string): Promise<string> {
  const { chmod, mkdir, writeFile } = await import('node:fs/promises');
  await mkdir(dir, { recursive: true });
  const script = async (name: string, command: string) => {
    await writeFile(join(dir, name), `#!/bin/sh\nexec ${command} "$@"\n`);
    await chmod(join(dir, name), 0o755);
  };
  // pnpm's bin shims find their package relative to their own path, so wrap them rather than link them.
  for (const tool of ['download-s3', 'prep-data', 'eval-model', 'upload-s3', 'serve'])
    await script(tool, `"${join(REPO, 'node_modules', '.bin', tool)}"`);
  const entry = join(REPO, 'packages', 'train', 'src', 'test-train-bin.ts');
  await script('train', `"${process.execPath}" --conditions=imgpipe-source --import "${import.meta.resolve('tsx')}" "${entry}"`);
  return dir;
}
