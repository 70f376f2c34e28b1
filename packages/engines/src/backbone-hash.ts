import { createReadStream } from 'node:fs';
import { createHash } from 'node:crypto';
import { dirname, join } from 'node:path';
import { InputError, silentLogger } from '@imgpipe/kit';
import { resolveBackbone } from './backbone.js';
import type { BackboneInfo } from '@imgpipe/kit';
import type { LoadBackboneOptions } from './backbone-types.js';
import { readModelJson, weightPaths } from './tfjs-io.js';

/**
 * The content of the backbone a spec names, without loading it: the sha256 of the ONNX file, or of a TF.js
 * model.json and its weight files in order. It equals `backboneSourceSha256(info)` of the loaded backbone.
 */
export async function hashBackboneSpec(spec: string, options: Pick<LoadBackboneOptions, 'cacheDir' | 'log'> = {}): Promise<string> {
  const resolved = await resolveBackbone(spec, { device: 'cpu', progress: false, ...options, log: options.log ?? silentLogger });
  const files =
    resolved.format === 'onnx'
      ? [resolved.path]
      : [resolved.path, ...weightPaths(await readModelJson(resolved.path), resolved.path).map((p) => join(dirname(resolved.path), p))];
  const hash = createHash('sha256');
  for (const file of files) {
    try {
      for await (const chunk of createReadStream(file, { highWaterMark: 1 << 20 })) hash.update(chunk as Buffer);
    } catch (error) {
      throw new InputError(`cannot read ${file} of backbone ${spec}`, { cause: error });
    }
  }
  return hash.digest('hex');
}

/** The sha256 of the files the user named (a TF.js model run converted to ONNX: the TF.js model's). */
export function backboneSourceSha256(info: BackboneInfo): string {
  return info.source_sha256 ?? info.sha256;
}
