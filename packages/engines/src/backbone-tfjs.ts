import { readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { Backbone, LoadBackboneOptions, ResolvedBackbone } from './backbone-types.js';
import { openTfjsRunner, tfjsFormatOf } from './backbone-tfjs-runner.js';
import type { TfjsWorkerReady } from './backbone-tfjs-worker.js';
import { cpuThreads } from './device.js';
import { InputError, sha256, type Logger } from '@imgpipe/kit';
import { preprocessSpec } from './preprocess.js';
import { loadTf } from './tfjs-load.js';
import { readModelJson, weightPaths } from './tfjs-io.js';
import { WorkerPool } from './worker-pool.js';

/**
 * A TF.js backbone (layers or graph model.json). On WebAssembly, which is single-threaded in Node, it runs in a pool
 * of worker threads, one tf + wasm backend each; on tfjs-node, -gpu or webgpu it runs in this thread.
 */
export async function loadTfjsBackbone(resolved: ResolvedBackbone, options: LoadBackboneOptions & { log: Logger }): Promise<Backbone> {
  const { log } = options;
  const json = await readModelJson(resolved.path);
  const files = [resolved.path, ...weightPaths(json, resolved.path).map((p) => join(dirname(resolved.path), p))];
  const hash = sha256(
    Buffer.concat(
      await Promise.all(
        files.map((f) =>
          readFile(f).catch((error) => {
            throw new InputError(`cannot read ${f} of TF.js backbone ${resolved.path}`, { cause: error });
          }),
        ),
      ),
    ),
  );
  const recorded = (json.userDefinedMetadata as { imgpipe?: { preprocess?: string } } | undefined)?.imgpipe?.preprocess;
  const preprocessName = options.preprocess ?? resolved.preprocess ?? recorded ?? 'tf';
  if (!options.preprocess && !resolved.preprocess && !recorded)
    log.info(`backbone ${resolved.name}: no --preprocess given, using tf ([-1, 1]) as for keras models`);
  const preprocess = preprocessSpec(preprocessName);
  const featureLayer = options.featureLayer ?? resolved.featureLayer;

  const loaded = await loadTf(options.device, log);
  const workers = loaded.backend === 'wasm' ? Math.max(1, options.workers ?? cpuThreads()) : 1;
  const base = {
    name: resolved.name,
    format: tfjsFormatOf(json),
    source: resolved.source,
    sha256: hash,
    layout: 'NHWC' as const,
    preprocess,
    engine: 'tfjs' as const,
  };

  if (workers === 1) {
    const runner = await openTfjsRunner(loaded.tf, resolved.path, { featureLayer, preprocess, inputSize: options.inputSize });
    const probe = await runner.run(new Uint8Array(runner.inputSize ** 2 * 3), 1);
    return {
      info: { ...base, input_size: runner.inputSize, feature_layer: runner.featureLayer, feature_dim: probe.length },
      files,
      device: loaded.device,
      concurrency: 1,
      extract: (pixels, count) => (count === 0 ? Promise.resolve(new Float32Array(0)) : runner.run(pixels, count)),
      async dispose() {
        runner.dispose();
      },
    };
  }
  const pool = await WorkerPool.start<TfjsWorkerReady>(
    'backbone-tfjs-worker',
    workers,
    { modelJsonPath: resolved.path, featureLayer, preprocess, inputSize: options.inputSize },
    `TF.js backbone ${resolved.path}`,
  );
  log.debug(`TF.js backbone on wasm: ${workers} worker threads`);
  try {
    const probe = await pool.run(new Uint8Array(pool.ready.inputSize ** 2 * 3), 1);
    return {
      info: { ...base, input_size: pool.ready.inputSize, feature_layer: pool.ready.featureLayer, feature_dim: probe.length },
      files,
      device: loaded.device,
      concurrency: workers,
      extract: (pixels, count) => (count === 0 ? Promise.resolve(new Float32Array(0)) : pool.run(pixels, count)),
      dispose: () => pool.close(),
    };
  } catch (error) {
    await pool.close();
    throw error;
  }
}
