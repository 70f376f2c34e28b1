#!/usr/bin/env node
// @ts-check
// load_model.mjs, published by imgpipe's upload-s3. Loads an imgpipe model directory (card.json, model.onnx, backbone/,
// head/) after verifying it as a whole, and classifies images with it: model.onnx (the whole classifier, uint8 RGB
// NHWC pixels in, probabilities out) when the card lists it, else the backbone and the TF.js head.
//
//   npm install onnxruntime-node sharp                      (a model with model.onnx; in this directory or a parent)
//   npm install onnxruntime-node @tensorflow/tfjs sharp     (a model without it: older, or a TF.js graph backbone)
//   node load_model.mjs MODEL_DIR [IMAGE...]       # a model directory (this file's model/ beside it)
//   node load_model.mjs PUBLICATION_DIR [IMAGE...] # a downloaded prefix holding publication.json
//   node load_model.mjs URL [IMAGE...]             # http(s)://…/prefix/ of a publication (public or presigned)
// With no IMAGE it prints the model's card summary; otherwise one JSON line per image: label and probabilities.
//
// Or import it: const model = await loadModel('model/'); const { label, probabilities } = await model.classify('x.jpg');
// Only what publication.json lists (with sizes and sha256) and what card.json lists is trusted: a changed, missing
// or extra file is refused.
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { lstat, mkdir, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, posix, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * @typedef {{ name: string, scale: number, mean: number[], std: number[], channel_order: 'RGB' | 'BGR' }} Preprocess
 * @typedef {{ path: string, size: number, sha256: string }} FileEntry
 * @typedef {{ format: string, labels: string[], input: { size: number, fit?: string }, preprocess: Preprocess,
 *   backbone: { name: string, format: string, path: string, layout?: string, input_size?: number, feature_layer?: string, preprocess?: Preprocess },
 *   head: { path: string }, onnx?: { path: string, input: string, output: string }, files?: FileEntry[], metrics?: Record<string, number> }} Card
 * @typedef {{ name: string, key: string, size: number, sha256: string }} PublishedObject
 * @typedef {{ format: string, id: string, objects: PublishedObject[] }} Publication
 * @typedef {{ data: Float32Array, dims: number[] }} Input
 * @typedef {{ extract(input: Input): Promise<Float32Array>, dispose(): Promise<void> }} Backbone
 * @typedef {typeof import('@tensorflow/tfjs')} Tf
 */

/** A '/'-separated path that stays inside its directory. @param {unknown} path @returns {path is string} */
function inside(path) {
  if (typeof path !== 'string' || path === '' || path.includes('\\') || path.includes('\0') || path.startsWith('/')) return false;
  return path.split('/').every((s) => s !== '' && s !== '.' && s !== '..');
}

/** @param {string} path */
async function sha256File(path) {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk);
  return hash.digest('hex');
}

/** Every entry under dir, relative '/'-paths, and whether it is a plain file. @param {string} dir */
async function walk(dir) {
  /** @type {{ path: string, plain: boolean }[]} */
  const found = [];
  /** @param {string} rel */
  const visit = async (rel) => {
    for (const entry of await readdir(join(dir, rel), { withFileTypes: true })) {
      const path = rel ? `${rel}/${entry.name}` : entry.name;
      if (entry.isDirectory()) await visit(path);
      else found.push({ path, plain: entry.isFile() });
    }
  };
  await visit('');
  return found;
}

/**
 * Check that `dir` holds exactly `files` (no more, no links), each with its size and sha256.
 * @param {string} dir @param {FileEntry[]} files @param {string} listedIn @param {Set<string>} ignore
 */
async function verifyFiles(dir, files, listedIn, ignore) {
  const listed = new Map(files.map((f) => [f.path, f]));
  for (const { path, plain } of await walk(dir)) {
    if (ignore.has(path)) continue;
    if (!plain) throw new Error(`${join(dir, path)}: a link or special file; only plain files are trusted`);
    if (!listed.has(path)) throw new Error(`${join(dir, path)}: not listed in ${listedIn}`);
  }
  for (const file of files) {
    const path = join(dir, file.path);
    const info = await lstat(path).catch(() => undefined);
    if (!info) throw new Error(`${path}: missing (listed in ${listedIn})`);
    if (info.size !== file.size) throw new Error(`${path}: ${info.size} bytes, ${listedIn} lists ${file.size}`);
    if ((await sha256File(path)) !== file.sha256) throw new Error(`${path}: sha256 differs from ${listedIn}; the file is corrupt or changed`);
  }
}

/** Verify a model directory against its card: every file listed, nothing else, paths inside. @param {string} dir @param {Card} card */
async function verifyModelDir(dir, card) {
  const where = join(dir, 'card.json');
  if (!Array.isArray(card.files)) throw new Error(`${where}: lists no files; re-save the model with a current imgpipe`);
  for (const file of card.files)
    if (!inside(file.path)) throw new Error(`${where}: file ${JSON.stringify(file.path)} points outside the model directory`);
  const followed = [['backbone.path', card.backbone.path], ['head.path', card.head.path], ...(card.onnx ? [['onnx.path', card.onnx.path]] : [])];
  for (const [what, path] of followed) {
    if (!inside(path)) throw new Error(`${where}: ${what} ${JSON.stringify(path)} points outside the model directory`);
    if (!card.files.some((f) => f.path === path)) throw new Error(`${where}: ${what} ${path} is not among the listed files`);
  }
  if (card.backbone.input_size !== undefined && card.backbone.input_size !== card.input.size) {
    throw new Error(`${where}: input.size is ${card.input.size} but the backbone was recorded with input_size ${card.backbone.input_size}`);
  }
  await verifyFiles(dir, card.files, where, new Set(['card.json']));
}

/** @param {string} text @param {string} source @returns {Publication} */
function parsePublication(text, source) {
  const manifest = JSON.parse(text);
  if (manifest?.format !== 'imgpipe-publication/1' || !Array.isArray(manifest.objects))
    throw new Error(`${source}: not an imgpipe publication manifest`);
  for (const o of manifest.objects)
    if (!inside(o?.name) || !inside(o.key)) throw new Error(`${source}: object ${JSON.stringify(o)} points outside the prefix`);
  return manifest;
}

/** The model objects of a publication, named relative to model/. @param {Publication} manifest */
function modelObjects(manifest) {
  return manifest.objects.filter((o) => o.name.startsWith('model/')).map((o) => ({ ...o, name: o.name.slice('model/'.length) }));
}

/**
 * Download a publication's model from http(s)://…/prefix/ into `dest` (default: a directory per publication id
 * under the OS temp dir), each object checked against publication.json; returns the model directory.
 * @param {string} url @param {string} [dest]
 * @public (this snippet's API; knip: no module here imports it)
 */
export async function downloadModel(url, dest) {
  const base = url.endsWith('/') ? url : `${url}/`;
  for (let attempt = 1; ; attempt++) {
    const manifestUrl = `${base}publication.json`;
    const response = await fetch(manifestUrl);
    if (!response.ok) throw new Error(`${manifestUrl}: HTTP ${response.status} (nothing published there?)`);
    const manifest = parsePublication(await response.text(), manifestUrl);
    const dir = resolve(dest ?? join(tmpdir(), `imgpipe-model-${manifest.id}`));
    const temp = `${dir}.${process.pid}.tmp`;
    await rm(temp, { recursive: true, force: true });
    try {
      for (const object of modelObjects(manifest)) {
        const got = await fetch(new URL(object.key.split('/').map(encodeURIComponent).join('/'), base));
        // Objects gone: a newer publication replaced this one while we read it; start over from its manifest.
        if (got.status === 404 && attempt < 3) throw Object.assign(new Error('replaced'), { replaced: true });
        if (!got.ok) throw new Error(`${base + object.key}: HTTP ${got.status}`);
        const bytes = Buffer.from(await got.arrayBuffer());
        if (bytes.length !== object.size || createHash('sha256').update(bytes).digest('hex') !== object.sha256) {
          throw new Error(`${base + object.key}: size or sha256 differs from publication.json; refusing a corrupt or changed object`);
        }
        await mkdir(dirname(join(temp, object.name)), { recursive: true });
        await writeFile(join(temp, object.name), bytes);
      }
      await rm(dir, { recursive: true, force: true });
      await rename(temp, dir);
      return dir;
    } catch (error) {
      await rm(temp, { recursive: true, force: true });
      if (/** @type {{ replaced?: boolean }} */ (error).replaced) continue;
      throw error;
    }
  }
}

/** A model directory, a downloaded publication (verified first) or a publication URL -> a model directory. @param {string} spec */
async function resolveModelDir(spec) {
  if (/^https?:\/\//.test(spec)) return downloadModel(spec);
  const dir = resolve(spec);
  const manifestPath = join(dir, 'publication.json');
  const text = await readFile(manifestPath, 'utf8').catch(() => undefined);
  if (text === undefined) return dir;
  const manifest = parsePublication(text, manifestPath);
  const root = join(dir, 'p', manifest.id);
  const listed = manifest.objects.map((o) => ({ path: o.key, size: o.size, sha256: o.sha256 }));
  for (const file of listed) {
    if (!file.path.startsWith(`p/${manifest.id}/`)) throw new Error(`${manifestPath}: object ${file.path} is outside p/${manifest.id}/`);
  }
  await verifyFiles(
    root,
    listed.map((f) => ({ ...f, path: f.path.slice(`p/${manifest.id}/`.length) })),
    manifestPath,
    new Set(),
  );
  return join(root, 'model');
}

/**
 * Load a model (see resolveModelDir) after verifying it.
 * @param {string} spec
 * @public
 */
export async function loadModel(spec) {
  const dir = await resolveModelDir(spec);
  /** @type {Card} */
  const card = JSON.parse(await readFile(join(dir, 'card.json'), 'utf8'));
  if (card.format !== 'imgpipe-model/1') throw new Error(`${join(dir, 'card.json')}: not an imgpipe model card (format ${card.format})`);
  await verifyModelDir(dir, card);
  const size = card.input.size;
  const labels = card.labels;
  const { predictPixels, dispose } = card.onnx ? await wholeModel(dir, card) : await twoParts(dir, card);

  /** @param {string | Buffer} image */
  async function classify(image) {
    const probs = await predictPixels(await decode(image, size, card.input.fit ?? 'fill'));
    let best = 0;
    for (let i = 1; i < probs.length; i++) if (/** @type {number} */ (probs[i]) > /** @type {number} */ (probs[best])) best = i;
    return { label: labels[best], index: best, probabilities: Object.fromEntries(labels.map((l, i) => [l, probs[i]])) };
  }

  return { dir, card, labels, classify, predictPixels, dispose };
}

/**
 * model.onnx on ONNX Runtime alone: pixels in as they are (the graph preprocesses), probabilities out.
 * @param {string} dir @param {Card} card
 * @returns {Promise<{ predictPixels(pixels: Uint8Array): Promise<number[]>, dispose(): Promise<void> }>}
 */
async function wholeModel(dir, card) {
  const ort = (await importOrt()).default;
  const { path, input, output } = /** @type {NonNullable<Card['onnx']>} */ (card.onnx);
  const session = await ort.InferenceSession.create(join(dir, path));
  const size = card.input.size;
  return {
    async predictPixels(pixels) {
      const results = await session.run({ [input]: new ort.Tensor('uint8', pixels, [1, size, size, 3]) }, [output]);
      return Array.from(/** @type {Float32Array} */ (results[output]?.data));
    },
    dispose: () => session.release(),
  };
}

/**
 * The backbone (ONNX Runtime or TF.js) and the TF.js head.
 * @param {string} dir @param {Card} card
 * @returns {Promise<{ predictPixels(pixels: Uint8Array): Promise<number[]>, dispose(): Promise<void> }>}
 */
async function twoParts(dir, card) {
  const tf = await loadTf();
  const head = await tf.loadLayersModel(fileHandler(tf, join(dir, card.head.path)));
  const backbone = await loadBackbone(tf, dir, card);
  const size = card.input.size;
  return {
    async predictPixels(pixels) {
      const input = preprocess(pixels, size, card.preprocess ?? card.backbone.preprocess, card.backbone.layout ?? 'NHWC');
      const features = await backbone.extract(input);
      const probs = tf.tidy(() => /** @type {import('@tensorflow/tfjs').Tensor} */ (head.predict(tf.tensor2d(features, [1, features.length]))));
      try {
        return Array.from(await probs.data());
      } finally {
        probs.dispose();
      }
    },
    dispose: async () => {
      head.dispose();
      await backbone.dispose();
    },
  };
}

/** @returns {Promise<Tf>} */
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

/**
 * A TF.js IOHandler reading model.json and its weight files from disk (tfjs without tfjs-node has none).
 * @param {Tf} tf @param {string} modelJsonPath @returns {import('@tensorflow/tfjs').io.IOHandler}
 */
function fileHandler(tf, modelJsonPath) {
  return {
    async load() {
      const json = JSON.parse(await readFile(modelJsonPath, 'utf8'));
      return tf.io.getModelArtifactsForJSON(json, async (manifest) => {
        const specs = manifest.flatMap((group) => group.weights);
        const buffers = await Promise.all(
          manifest
            .flatMap((group) => group.paths)
            .map(async (p) => {
              const rel = posix.normalize(posix.join(posix.dirname(modelJsonPath.split('\\').join('/')), p));
              if (p.startsWith('/') || p.split('/').includes('..'))
                throw new Error(`${modelJsonPath}: weights path ${p} points outside the model directory`);
              const data = await readFile(rel);
              return data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength);
            }),
        );
        return [specs, tf.io.concatenateArrayBuffers(/** @type {ArrayBuffer[]} */ (buffers))];
      });
    },
  };
}

/**
 * Decode like imgpipe does: EXIF rotation, alpha onto white, sRGB, resize to size x size, raw RGB bytes.
 * @param {string | Buffer} image @param {number} size @param {string} fit
 */
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

/**
 * value = (pixel * scale - mean[c]) / std[c], channels reordered to channel_order, in the backbone's layout.
 * @param {Uint8Array} pixels @param {number} size @param {Preprocess} spec @param {string} layout @returns {Input}
 */
function preprocess(pixels, size, spec, layout) {
  const plane = size * size;
  const src = spec.channel_order === 'BGR' ? [2, 1, 0] : [0, 1, 2];
  const out = new Float32Array(plane * 3);
  for (let p = 0; p < plane; p++) {
    for (let c = 0; c < 3; c++) {
      const channel = src[c] ?? c;
      const value = ((pixels[p * 3 + channel] ?? 0) * spec.scale - (spec.mean[c] ?? 0)) / (spec.std[c] ?? 1);
      out[layout === 'NCHW' ? c * plane + p : p * 3 + c] = value;
    }
  }
  return { data: out, dims: layout === 'NCHW' ? [1, 3, size, size] : [1, size, size, 3] };
}

/**
 * @param {Tf} tf @param {string} dir @param {Card} card @returns {Promise<Backbone>}
 */
async function loadBackbone(tf, dir, card) {
  const path = join(dir, card.backbone.path);
  const featureLayer = card.backbone.feature_layer || undefined;
  if (card.backbone.format === 'onnx') {
    const ort = (await importOrt()).default;
    const session = await ort.InferenceSession.create(path);
    // imgpipe saves the backbone with its feature layer already a graph output.
    const output = featureLayer ?? session.outputNames[0] ?? '';
    if (!session.outputNames.includes(output)) {
      await session.release();
      throw new Error(
        `${path}: feature layer ${output} is not a graph output (outputs: ${session.outputNames.join(', ')}); re-save the model with a current imgpipe`,
      );
    }
    const inputName = session.inputNames[0] ?? '';
    return {
      async extract(input) {
        const results = await session.run({ [inputName]: new ort.Tensor('float32', input.data, input.dims) }, [output]);
        return Float32Array.from(/** @type {Float32Array} */ (results[output]?.data));
      },
      dispose: async () => {
        await session.release();
      },
    };
  }
  if (card.backbone.format === 'tfjs-graph') {
    const model = await tf.loadGraphModel(fileHandler(tf, path));
    return {
      async extract(input) {
        const out = tf.tidy(() => {
          const result = model.execute(tf.tensor(input.data, input.dims), featureLayer);
          return (Array.isArray(result) ? /** @type {import('@tensorflow/tfjs').Tensor} */ (result[0]) : result).reshape([-1]);
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
    const model =
      layer && layer !== loaded.layers.at(-1)
        ? tf.model({ inputs: loaded.inputs, outputs: /** @type {import('@tensorflow/tfjs').SymbolicTensor} */ (layer.output) })
        : loaded;
    return {
      async extract(input) {
        const out = tf.tidy(() => /** @type {import('@tensorflow/tfjs').Tensor} */ (model.predict(tf.tensor(input.data, input.dims))).reshape([-1]));
        try {
          return Float32Array.from(await out.data());
        } finally {
          out.dispose();
        }
      },
      dispose: async () => {
        loaded.dispose();
      },
    };
  }
  throw new Error(`${dir}/card.json: unknown backbone.format ${card.backbone.format}`);
}

/** @param {string[]} argv */
async function main(argv) {
  const [modelDir, ...images] = argv;
  if (!modelDir || modelDir === '--help' || modelDir === '-h') {
    process.stderr.write('usage: node load_model.mjs MODEL_DIR|PUBLICATION_DIR|URL [IMAGE ...]\n');
    return modelDir ? 0 : 2;
  }
  const model = await loadModel(modelDir);
  try {
    if (images.length === 0) {
      const { labels, input, backbone, metrics } = model.card;
      process.stdout.write(
        `${JSON.stringify({ model: model.dir, labels, input, backbone: { name: backbone.name, format: backbone.format }, metrics })}\n`,
      );
    }
    for (const image of images) {
      const { label, probabilities } = await model.classify(image);
      process.stdout.write(`${JSON.stringify({ image, label, probabilities })}\n`);
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
      process.stderr.write(`load_model.mjs: ${error?.message ? error.message : String(error)}\n`);
      process.exitCode = 1;
    },
  );
}

/** onnxruntime-node 1.30's telemetry writes a $TMPDIR/mat-debug-<pid>.log per process unless this is set. */
async function importOrt() {
  process.env.ORT_DISABLE_TELEMETRY ??= '1';
  return import('onnxruntime-node');
}
