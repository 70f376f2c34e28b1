/** The file name upload-s3 gives the loader snippet. */
export const SNIPPET_NAME = 'load_model.mjs';

/**
 * load_model.mjs: a self-contained loader for an imgpipe model directory (the seed's prep_model.py). It depends on
 * nothing from imgpipe, only on onnxruntime-node (ONNX backbones), @tensorflow/tfjs (TF.js backbones and the head)
 * and sharp (decoding), and repeats the few rules that matter: card.json, the preprocessing formula, the layouts.
 */
export const LOAD_MODEL_SNIPPET = String.raw`#!/usr/bin/env node
// load_model.mjs, written by imgpipe's upload-s3. Loads an imgpipe model directory (card.json, backbone/, head/)
// and classifies images with it.
//
//   npm install onnxruntime-node @tensorflow/tfjs sharp     (in this directory or a parent)
//   node load_model.mjs MODEL_DIR              # prints the model's card summary
//   node load_model.mjs MODEL_DIR IMAGE...     # prints one JSON line per image: label and probabilities
//
// Or import it: const model = await loadModel('model/'); const { label, probabilities } = await model.classify('x.jpg');
import { readFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Load a model directory; returns { card, labels, classify(imagePathOrBuffer), predictPixels(uint8 RGB), dispose() }. */
export async function loadModel(modelDir) {
  const dir = resolve(modelDir);
  const card = JSON.parse(await readFile(join(dir, 'card.json'), 'utf8'));
  if (card.format !== 'imgpipe-model/1') throw new Error(dir + '/card.json: not an imgpipe model card (format ' + card.format + ')');
  const tf = await loadTf();
  const head = await tf.loadLayersModel(fileHandler(tf, join(dir, card.head?.path ?? 'head/model.json')));
  const backbone = await loadBackbone(tf, dir, card);
  const size = card.input.size;
  const labels = card.labels;

  async function predictPixels(pixels) {
    const input = preprocess(pixels, size, card.preprocess ?? card.backbone.preprocess, card.backbone.layout ?? 'NHWC');
    const features = await backbone.extract(input);
    const probs = tf.tidy(() => head.predict(tf.tensor2d(features, [1, features.length])));
    try {
      return Array.from(await probs.data());
    } finally {
      probs.dispose();
    }
  }

  async function classify(image) {
    const probs = await predictPixels(await decode(image, size, card.input.fit ?? 'fill'));
    let best = 0;
    for (let i = 1; i < probs.length; i++) if (probs[i] > probs[best]) best = i;
    return { label: labels[best], index: best, probabilities: Object.fromEntries(labels.map((l, i) => [l, probs[i]])) };
  }

  return { dir, card, labels, classify, predictPixels, dispose: async () => { head.dispose(); await backbone.dispose(); } };
}

async function loadTf() {
  // The native binding is much faster when installed; plain @tensorflow/tfjs (CPU, pure JS) otherwise.
  for (const name of ['@tensorflow/tfjs-node-gpu', '@tensorflow/tfjs-node']) {
    try {
      return await import(name);
    } catch {}
  }
  const tf = await import('@tensorflow/tfjs');
  await tf.setBackend('cpu');
  return tf;
}

/** A TF.js IOHandler reading model.json and its weight files from disk (tfjs without tfjs-node has none). */
function fileHandler(tf, modelJsonPath) {
  return {
    async load() {
      const json = JSON.parse(await readFile(modelJsonPath, 'utf8'));
      return tf.io.getModelArtifactsForJSON(json, async (manifest) => {
        const specs = manifest.flatMap((group) => group.weights);
        const buffers = await Promise.all(
          manifest.flatMap((group) => group.paths).map(async (p) => {
            const data = await readFile(join(dirname(modelJsonPath), p));
            return data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength);
          }),
        );
        return [specs, tf.io.concatenateArrayBuffers(buffers)];
      });
    },
  };
}

/** Decode like imgpipe does: EXIF rotation, alpha onto white, sRGB, resize to size x size, raw RGB bytes. */
async function decode(image, size, fit) {
  const sharp = (await import('sharp')).default;
  const { data } = await sharp(image)
    .rotate()
    .flatten({ background: { r: 255, g: 255, b: 255 } })
    .toColourspace('srgb')
    .resize(size, size, { fit: fit === 'cover' ? 'cover' : 'fill', position: 'centre' })
    .removeAlpha()
    .raw()
    .toBuffer({ resolveWithObject: true });
  return new Uint8Array(data.buffer, data.byteOffset, data.length);
}

/** value = (pixel * scale - mean[c]) / std[c], channels reordered to channel_order, in the backbone's layout. */
function preprocess(pixels, size, spec, layout) {
  const plane = size * size;
  const src = spec.channel_order === 'BGR' ? [2, 1, 0] : [0, 1, 2];
  const out = new Float32Array(plane * 3);
  for (let p = 0; p < plane; p++) {
    for (let c = 0; c < 3; c++) {
      const value = (pixels[p * 3 + src[c]] * spec.scale - spec.mean[c]) / spec.std[c];
      out[layout === 'NCHW' ? c * plane + p : p * 3 + c] = value;
    }
  }
  return { data: out, dims: layout === 'NCHW' ? [1, 3, size, size] : [1, size, size, 3] };
}

async function loadBackbone(tf, dir, card) {
  const path = join(dir, card.backbone.path);
  const featureLayer = card.backbone.feature_layer || undefined;
  if (card.backbone.format === 'onnx') {
    const ort = (await import('onnxruntime-node')).default ?? (await import('onnxruntime-node'));
    let bytes = await readFile(path);
    let session = await ort.InferenceSession.create(bytes);
    if (featureLayer && !session.outputNames.includes(featureLayer)) {
      // The feature layer is an inner value of the graph: add it to the graph's outputs and reload.
      await session.release();
      bytes = withGraphOutput(bytes, featureLayer);
      session = await ort.InferenceSession.create(bytes);
    }
    const output = featureLayer ?? session.outputNames[0];
    return {
      async extract(input) {
        const results = await session.run({ [session.inputNames[0]]: new ort.Tensor('float32', input.data, input.dims) }, [output]);
        return Float32Array.from(results[output].data);
      },
      dispose: () => session.release(),
    };
  }
  if (card.backbone.format === 'tfjs-graph') {
    const model = await tf.loadGraphModel(fileHandler(tf, path));
    return {
      async extract(input) {
        const out = tf.tidy(() => {
          const result = model.execute(tf.tensor(input.data, input.dims), featureLayer);
          return (Array.isArray(result) ? result[0] : result).reshape([-1]);
        });
        try {
          return Float32Array.from(await out.data());
        } finally {
          out.dispose();
        }
      },
      dispose: async () => model.dispose(),
    };
  }
  if (card.backbone.format === 'tfjs-layers') {
    const loaded = await tf.loadLayersModel(fileHandler(tf, path));
    const layer = featureLayer ? loaded.layers.find((l) => l.name === featureLayer) : undefined;
    const model = layer && layer !== loaded.layers.at(-1) ? tf.model({ inputs: loaded.inputs, outputs: layer.output }) : loaded;
    return {
      async extract(input) {
        const out = tf.tidy(() => model.predict(tf.tensor(input.data, input.dims)).reshape([-1]));
        try {
          return Float32Array.from(await out.data());
        } finally {
          out.dispose();
        }
      },
      dispose: async () => loaded.dispose(),
    };
  }
  throw new Error(dir + '/card.json: unknown backbone.format ' + card.backbone.format);
}

// ONNX models are protobuf: ModelProto.graph is field 7, GraphProto.output is field 12 (a repeated ValueInfoProto).
// Appending one more output to the graph's bytes is valid protobuf, so no protobuf library is needed.
function withGraphOutput(model, name) {
  const parts = [];
  let pos = 0;
  while (pos < model.length) {
    const start = pos;
    let tag;
    [tag, pos] = readVarint(model, pos);
    const field = Math.floor(tag / 8);
    const wire = tag & 7;
    if (wire === 0) [, pos] = readVarint(model, pos);
    else if (wire === 1) pos += 8;
    else if (wire === 5) pos += 4;
    else if (wire === 2) {
      let length;
      [length, pos] = readVarint(model, pos);
      if (field === 7) {
        const graph = Buffer.concat([model.subarray(pos, pos + length), field2(12, valueInfo(name))]);
        parts.push(Buffer.concat([varint(tag), varint(graph.length), graph]));
        pos += length;
        continue;
      }
      pos += length;
    } else throw new Error('unexpected protobuf wire type ' + wire + ' in the ONNX model');
    parts.push(model.subarray(start, pos));
  }
  return Buffer.concat(parts);
}

function valueInfo(name) {
  const tensorType = Buffer.from([0x08, 0x01]); // elem_type = FLOAT
  const type = field2(1, tensorType); // TypeProto.tensor_type
  return Buffer.concat([field2(1, Buffer.from(name, 'utf8')), field2(2, type)]); // ValueInfoProto.name, .type
}

function field2(field, bytes) {
  return Buffer.concat([varint(field * 8 + 2), varint(bytes.length), bytes]);
}

function varint(n) {
  const out = [];
  while (n > 127) {
    out.push((n % 128) | 128);
    n = Math.floor(n / 128);
  }
  out.push(n);
  return Buffer.from(out);
}

function readVarint(buffer, pos) {
  let value = 0;
  let scale = 1;
  let byte;
  do {
    byte = buffer[pos++];
    value += (byte & 0x7f) * scale;
    scale *= 128;
  } while (byte & 0x80);
  return [value, pos];
}

async function main(argv) {
  const [modelDir, ...images] = argv;
  if (!modelDir || modelDir === '--help' || modelDir === '-h') {
    process.stderr.write('usage: node load_model.mjs MODEL_DIR [IMAGE ...]\n');
    return modelDir ? 0 : 2;
  }
  const model = await loadModel(modelDir);
  try {
    if (images.length === 0) {
      const { labels, input, backbone, metrics } = model.card;
      process.stdout.write(JSON.stringify({ model: model.dir, labels, input, backbone: { name: backbone.name, format: backbone.format }, metrics }) + '\n');
    }
    for (const image of images) {
      const { label, probabilities } = await model.classify(image);
      process.stdout.write(JSON.stringify({ image, label, probabilities }) + '\n');
    }
  } finally {
    await model.dispose();
  }
  return 0;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main(process.argv.slice(2)).then(
    (code) => (process.exitCode = code),
    (error) => {
      process.stderr.write('load_model.mjs: ' + (error && error.message ? error.message : String(error)) + '\n');
      process.exitCode = 1;
    },
  );
}
`;
