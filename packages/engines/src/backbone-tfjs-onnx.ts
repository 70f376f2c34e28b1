import { readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { Backbone, LoadBackboneOptions, ResolvedBackbone } from './backbone-types.js';
import { loadOnnxBackbone } from './backbone-onnx.js';
import { tfjsFormatOf } from './backbone-tfjs-runner.js';
import { resolveCacheDir } from './cache-dir.js';
import { InputError, UsageError } from '@imgpipe/kit';
import { exists, sha256, writeFileAtomic } from '@imgpipe/kit';
import type { Logger } from '@imgpipe/kit';
import { ortCudaInstalled } from './onnx.js';
import { CONVERTER_VERSION, convertTfjsLayers, UnsupportedLayerError } from '@imgpipe/tfjs-onnx';
import { readModelJson, weightPaths } from './tfjs-io.js';

/**
 * A TF.js layers backbone on ONNX Runtime: converted once into <cache>/converted/<key>/model.onnx (key: the
 * model's content hash, feature layer, input size, converter version), then loaded as an ONNX backbone whose
 * input stays NHWC. Returns undefined where the model stays on TF.js: --device wasm, a graph model, a layer that
 * does not convert (logged by name and class), or a GPU device ONNX Runtime cannot use here.
 */
export async function loadTfjsOnOnnx(resolved: ResolvedBackbone, options: LoadBackboneOptions & { log: Logger }): Promise<Backbone | undefined> {
  const { log } = options;
  if (options.device === 'wasm' || options.convertTfjs === false) return undefined;
  const json = await readModelJson(resolved.path);
  if (tfjsFormatOf(json) !== 'tfjs-layers') return undefined;
  if (options.device === 'cuda' && !ortCudaInstalled()) {
    log.info(`backbone ${resolved.name}: ONNX Runtime's CUDA provider is not installed, so the TF.js layers model runs on TF.js`);
    return undefined;
  }
  const weightFiles = weightPaths(json).map((p) => join(dirname(resolved.path), p));
  const [modelBytes, ...weightBytes] = await Promise.all(
    [resolved.path, ...weightFiles].map((f) =>
      readFile(f).catch((error) => {
        throw new InputError(`cannot read ${f} of TF.js backbone ${resolved.path}`, { cause: error });
      }),
    ),
  );
  const weights = Buffer.concat(weightBytes);
  const sourceSha256 = sha256(Buffer.concat([modelBytes!, weights]));
  const recorded = (json.userDefinedMetadata as { imgpipe?: { preprocess?: string } } | undefined)?.imgpipe?.preprocess;
  const preprocess = options.preprocess ?? resolved.preprocess ?? recorded ?? 'tf';
  if (!options.preprocess && !resolved.preprocess && !recorded)
    log.info(`backbone ${resolved.name}: no --preprocess given, using tf ([-1, 1]) as for keras models`);
  const featureLayer = options.featureLayer ?? resolved.featureLayer;

  const key = sha256(
    JSON.stringify({ converter: CONVERTER_VERSION, model: sourceSha256, featureLayer: featureLayer ?? null, inputSize: options.inputSize ?? null }),
  );
  const dir = join(resolveCacheDir(options.cacheDir), 'converted', key.slice(0, 16));
  const path = join(dir, 'model.onnx');
  const manifestPath = join(dir, 'conversion.json');
  let output: string;
  if ((await exists(path)) && (await exists(manifestPath))) {
    output = (JSON.parse(await readFile(manifestPath, 'utf8')) as { feature_layer: string }).feature_layer;
    log.debug(`backbone ${resolved.name}: ONNX conversion cached at ${path}`);
  } else {
    let converted: ReturnType<typeof convertTfjsLayers>;
    try {
      converted = convertTfjsLayers(json, weights, {
        source: resolved.path,
        ...(featureLayer ? { featureLayer } : {}),
        ...(options.inputSize ? { inputSize: options.inputSize } : {}),
        metadata: { 'imgpipe.preprocess': recorded ?? 'tf', 'imgpipe.source_sha256': sourceSha256 },
      });
    } catch (error) {
      if (!(error instanceof UnsupportedLayerError)) throw error;
      log.info(`backbone ${resolved.name}: ${error.message}, so it runs on TF.js, not converted to ONNX`);
      return undefined;
    }
    output = converted.featureLayer;
    await writeFileAtomic(path, converted.bytes);
    await writeFileAtomic(
      manifestPath,
      `${JSON.stringify({ source: resolved.source, source_sha256: sourceSha256, feature_layer: output, converter_version: CONVERTER_VERSION }, null, 2)}\n`,
    );
    log.info(`backbone ${resolved.name}: converted the TF.js layers model to ONNX (${path})`);
  }
  let backbone: Backbone;
  try {
    backbone = await loadOnnxBackbone(
      { name: resolved.name, source: resolved.source, path, format: 'onnx', featureLayer: output, preprocess },
      { ...options, featureLayer: output, preprocess },
    );
  } catch (error) {
    if (error instanceof UsageError && /^--device (cuda|webgpu) is not available/.test(error.message)) {
      log.info(`backbone ${resolved.name}: ${error.message.split('\n')[0]}; the TF.js layers model runs on TF.js`);
      return undefined;
    }
    throw error;
  }
  backbone.info = { ...backbone.info, engine: 'onnxruntime', converted_from: 'tfjs-layers', source_sha256: sourceSha256 };
  log.info(`backbone ${resolved.name}: TF.js layers model on ONNX Runtime (${backbone.device}), converted from ${resolved.path}`);
  return backbone;
}
