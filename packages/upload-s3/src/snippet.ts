import { readFile } from 'node:fs/promises';

/**
 * load_model.mjs: a self-contained loader for an imgpipe model directory or publication (the seed's
 * prep_model.py), kept as a type-checked file in assets/ and published as it is. It depends on nothing from
 * imgpipe, only on onnxruntime-node, @tensorflow/tfjs and sharp.
 */
const SNIPPET_PATH = new URL('../assets/load_model.mjs', import.meta.url);

export function readSnippet(): Promise<Buffer> {
  return readFile(SNIPPET_PATH);
}
