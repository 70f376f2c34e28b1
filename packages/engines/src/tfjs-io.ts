import { readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { io } from '@tensorflow/tfjs-core';
import { InputError, safeJoin, writeFileAtomic, writeJsonAtomic } from '@imgpipe/kit';

/**
 * TF.js models on disk without @tensorflow/tfjs-node: a load handler reading model.json and its weight files, and
 * a save handler writing model.json + weights.bin (atomically). Works for layers and graph models.
 */
interface TfjsIo {
  getModelArtifactsForJSON: typeof io.getModelArtifactsForJSON;
  concatenateArrayBuffers: typeof io.concatenateArrayBuffers;
}

/** The parsed model.json, with a readable error naming the file. */
export async function readModelJson(path: string): Promise<io.ModelJSON> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    throw new InputError(`cannot read TF.js model ${path}`, { cause: error });
  }
  try {
    const json = JSON.parse(text) as io.ModelJSON;
    if (!json.modelTopology || !Array.isArray(json.weightsManifest)) throw new Error('no modelTopology or weightsManifest');
    return json;
  } catch (error) {
    throw new InputError(`${path} is not a TF.js model.json (${(error as Error).message})`, { cause: error });
  }
}

/**
 * The weight files a model.json refers to, relative to its directory; each must be a plain relative name inside
 * it (kit's safeJoin), else an InputError naming `source`, before anything is read or written.
 */
export function weightPaths(json: io.ModelJSON, source = 'model.json'): string[] {
  const paths = json.weightsManifest.flatMap((group) => (Array.isArray(group?.paths) ? group.paths : []));
  for (const path of paths) safeJoin('.', path, `${source}: weightsManifest path`);
  return paths;
}

export function fileLoadHandler(tfio: TfjsIo, modelJsonPath: string): io.IOHandler {
  return {
    async load() {
      const json = await readModelJson(modelJsonPath);
      return tfio.getModelArtifactsForJSON(json, async (manifest) => {
        const specs = manifest.flatMap((group) => group.weights);
        const buffers = await Promise.all(
          manifest
            .flatMap((group) => group.paths)
            .map(async (p) => {
              const file = safeJoin(dirname(modelJsonPath), p, `${modelJsonPath}: weightsManifest path`);
              const data = await readFile(file).catch((error) => {
                throw new InputError(`cannot read weights ${file} of TF.js model ${modelJsonPath}`, { cause: error });
              });
              return data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength) as ArrayBuffer;
            }),
        );
        return [specs, tfio.concatenateArrayBuffers(buffers)];
      });
    },
  };
}

/** Save handler writing <dir>/model.json and <dir>/weights.bin; use with model.save(fileSaveHandler(dir)). */
export function fileSaveHandler(dir: string): io.IOHandler {
  return {
    async save(artifacts) {
      const weights = artifacts.weightData;
      const chunks = weights === undefined ? [] : Array.isArray(weights) ? weights : [weights];
      const bytes = Buffer.concat(chunks.map((b) => new Uint8Array(b)));
      await writeFileAtomic(join(dir, 'weights.bin'), bytes);
      const modelJson: Record<string, unknown> = {
        format: artifacts.format ?? 'layers-model',
        generatedBy: artifacts.generatedBy,
        convertedBy: artifacts.convertedBy ?? null,
        modelTopology: artifacts.modelTopology,
        weightsManifest: [{ paths: ['weights.bin'], weights: artifacts.weightSpecs ?? [] }],
      };
      if (artifacts.trainingConfig) modelJson.trainingConfig = artifacts.trainingConfig;
      if (artifacts.userDefinedMetadata) modelJson.userDefinedMetadata = artifacts.userDefinedMetadata;
      if (artifacts.signature) modelJson.signature = artifacts.signature;
      await writeJsonAtomic(join(dir, 'model.json'), modelJson);
      return {
        modelArtifactsInfo: {
          dateSaved: new Date(),
          modelTopologyType: 'JSON',
          modelTopologyBytes: JSON.stringify(artifacts.modelTopology).length,
          weightSpecsBytes: JSON.stringify(artifacts.weightSpecs ?? []).length,
          weightDataBytes: bytes.length,
        },
      };
    },
  };
}
