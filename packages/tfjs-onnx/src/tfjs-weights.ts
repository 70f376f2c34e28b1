import type { io } from '@tensorflow/tfjs-core';
import { InputError } from '@imgpipe/kit';

/** A float weight of a TF.js model: its shape and values (dequantized when the model stores it quantized). */
export interface NamedWeight {
  shape: number[];
  data: Float32Array;
}

const BYTES: Record<string, number> = { float32: 4, int32: 4, bool: 1, uint8: 1, uint16: 2, float16: 2 };

/**
 * The weights of a model.json from its shards' bytes (concatenated in manifest order), by name, as TF.js decodes
 * them: float32, or uint8/uint16 (value * scale + min) and float16 quantization. Non-float weights are skipped.
 */
export function decodeWeights(manifest: io.WeightsManifestConfig, data: Uint8Array, source: string): Map<string, NamedWeight> {
  const out = new Map<string, NamedWeight>();
  let offset = 0;
  for (const spec of manifest.flatMap((group) => group.weights)) {
    const count = spec.shape.reduce((a, b) => a * b, 1);
    const stored = spec.quantization?.dtype ?? spec.dtype;
    const size = BYTES[stored];
    if (size === undefined) throw new InputError(`${source}: weight ${spec.name} has an unknown dtype '${stored}'`);
    const bytes = count * size;
    if (offset + bytes > data.length) throw new InputError(`${source}: the weight files end before weight ${spec.name} (${data.length} bytes)`);
    const raw = data.slice(offset, offset + bytes);
    offset += bytes;
    if (spec.dtype !== 'float32') continue;
    out.set(spec.name, { shape: spec.shape, data: toFloat32(raw, stored, count, spec.quantization) });
  }
  return out;
}

function toFloat32(raw: Uint8Array, stored: string, count: number, q: io.WeightsManifestEntry['quantization']): Float32Array {
  const view = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
  const out = new Float32Array(count);
  if (stored === 'float32') {
    for (let i = 0; i < count; i++) out[i] = view.getFloat32(i * 4, true);
  } else if (stored === 'float16') {
    for (let i = 0; i < count; i++) out[i] = halfToFloat(view.getUint16(i * 2, true));
  } else {
    const scale = q?.scale ?? 1;
    const min = q?.min ?? 0;
    for (let i = 0; i < count; i++) out[i] = (stored === 'uint8' ? view.getUint8(i) : view.getUint16(i * 2, true)) * scale + min;
  }
  return out;
}

function halfToFloat(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exponent = (h >> 10) & 0x1f;
  const fraction = h & 0x3ff;
  if (exponent === 0) return sign * 2 ** -14 * (fraction / 1024);
  if (exponent === 0x1f) return fraction ? NaN : sign * Infinity;
  return sign * 2 ** (exponent - 15) * (1 + fraction / 1024);
}
