import { HttpError } from './http-error.js';

/** One image of a request: the name answers are keyed by (and errors name), and its encoded bytes. */
export interface ImageItem {
  name: string;
  bytes: Buffer;
}

const BASE64 = /^[A-Za-z0-9+/\-_]*={0,2}$/;
const DATA_URL = /^data:[\w.+-]+\/[\w.+-]+(?:;[\w-]+=[\w.-]+)*;base64,/i;

/** Strict base64 (standard or URL-safe, optionally a data: URL); 400 naming the item when it is not. */
export function decodeBase64(text: unknown, where: string, item = where): Buffer {
  if (typeof text !== 'string') throw new HttpError(400, `${where}: expected a base64 string, got ${typeOf(text)}`, { item });
  // The usual request (plain base64, no whitespace): Node's decoder skips any character outside the alphabet, so the
  // text is valid exactly when it decodes to the length its characters promise. Anything else takes the checks below.
  let end = text.length;
  while (end > 0 && text.length - end < 2 && text.charCodeAt(end - 1) === 0x3d) end--;
  if (end > 0 && end % 4 !== 1) {
    const decoded = Buffer.from(text, 'base64');
    if (decoded.length === Math.floor((end * 3) / 4)) return decoded;
  }
  const compact = text.replace(DATA_URL, '').replace(/\s+/g, '');
  if (compact.length === 0) throw new HttpError(400, `${where}: empty image`, { item });
  if (!BASE64.test(compact) || compact.replace(/=+$/, '').length % 4 === 1) {
    throw new HttpError(400, `${where}: not valid base64`, { item });
  }
  return Buffer.from(compact, 'base64'); // Node's decoder takes the URL-safe alphabet too
}

/**
 * The seed's request: {"data": [{"path": "x.jpg", "encoded": "<base64>"}, ...]}. Paths key the answer, so
 * they must be present and unique.
 */
export function parseSeedRequest(body: Record<string, unknown>, maxImages: number): ImageItem[] {
  const data = body.data;
  if (!Array.isArray(data)) {
    throw new HttpError(400, `expected "data" to be a list of {"path", "encoded"} objects, got ${typeOf(data)}`);
  }
  if (data.length === 0) throw new HttpError(400, '"data" is empty: send at least one {"path", "encoded"} object');
  checkCount(data.length, maxImages);
  const seen = new Map<string, number>();
  return data.map((entry: unknown, index) => {
    const where = `data[${index}]`;
    if (entry === null || typeof entry !== 'object' || Array.isArray(entry)) {
      throw new HttpError(400, `${where}: expected an object {"path", "encoded"}, got ${typeOf(entry)}`, { item: where });
    }
    const { path, encoded } = entry as Record<string, unknown>;
    if (typeof path !== 'string' || path === '') {
      throw new HttpError(400, `${where}: missing "path" (a non-empty string naming the image)`, { item: where });
    }
    const item = `${where} (${JSON.stringify(path)})`;
    const earlier = seen.get(path);
    if (earlier !== undefined) {
      throw new HttpError(400, `${item}: the same path as data[${earlier}]; paths key the answer, so they must be unique`, { item: path });
    }
    seen.set(path, index);
    if (encoded === undefined) throw new HttpError(400, `${item}: missing "encoded" (the image as base64)`, { item: path });
    return { name: path, bytes: decodeBase64(encoded, item, path) };
  });
}

interface V2InferRequest {
  id: string | undefined;
  inputName: string;
  items: ImageItem[];
  /** The outputs asked for by name (all when the request names none). */
  outputs: string[] | undefined;
}

/**
 * An Open Inference Protocol (KServe V2) infer request with one BYTES input holding base64-encoded images,
 * shape [n] (or [n, 1]); nested data is flattened in row-major order as the protocol says.
 */
export function parseV2InferRequest(body: Record<string, unknown>, maxImages: number): V2InferRequest {
  const { inputs, id, outputs } = body;
  if (!Array.isArray(inputs) || inputs.length !== 1) {
    throw new HttpError(
      400,
      `expected "inputs" to be a list with one BYTES tensor of base64 images, got ${Array.isArray(inputs) ? `${inputs.length} inputs` : typeOf(inputs)}`,
    );
  }
  const input = inputs[0] as Record<string, unknown> | null;
  if (input === null || typeof input !== 'object') throw new HttpError(400, `inputs[0]: expected a tensor object, got ${typeOf(input)}`);
  const name = typeof input.name === 'string' ? input.name : 'inputs[0]';
  if (input.datatype !== 'BYTES') {
    throw new HttpError(400, `input ${JSON.stringify(name)}: expected datatype "BYTES" (base64 images), got ${JSON.stringify(input.datatype)}`);
  }
  if (!Array.isArray(input.data))
    throw new HttpError(400, `input ${JSON.stringify(name)}: expected "data" to be a list of base64 strings, got ${typeOf(input.data)}`);
  const data = flattenData(input.data, name);
  const shape = input.shape;
  if (!Array.isArray(shape) || !shape.every((d) => Number.isInteger(d) && d >= 0)) {
    throw new HttpError(400, `input ${JSON.stringify(name)}: expected "shape" to be a list of non-negative integers, got ${JSON.stringify(shape)}`);
  }
  const elements = (shape as number[]).reduce((a, b) => a * b, 1);
  if (elements !== data.length) {
    throw new HttpError(400, `input ${JSON.stringify(name)}: shape ${JSON.stringify(shape)} holds ${elements} elements but data has ${data.length}`);
  }
  if (data.length === 0) throw new HttpError(400, `input ${JSON.stringify(name)}: no images`);
  checkCount(data.length, maxImages);
  if (id !== undefined && typeof id !== 'string') throw new HttpError(400, `expected "id" to be a string, got ${typeOf(id)}`);
  let wanted: string[] | undefined;
  if (outputs !== undefined) {
    if (!Array.isArray(outputs) || !outputs.every((o) => o && typeof o === 'object' && typeof (o as { name?: unknown }).name === 'string')) {
      throw new HttpError(400, 'expected "outputs" to be a list of {"name": ...} objects');
    }
    wanted = outputs.map((o) => (o as { name: string }).name);
  }
  const items = data.map((value, index) => {
    const item = `input ${JSON.stringify(name)} data[${index}]`;
    return { name: item, bytes: decodeBase64(value, item) };
  });
  return { id, inputName: name, items, outputs: wanted };
}

/** Deepest nesting of a V2 input's data: far more than any tensor has dimensions, far less than a JSON depth bomb. */
const MAX_DATA_DEPTH = 32;

/** Nested data in row-major order, without recursion (a deep list is a 400 naming the input, not a stack overflow). */
function flattenData(data: unknown[], name: string): unknown[] {
  const flat: unknown[] = [];
  const stack: { list: unknown[]; next: number }[] = [{ list: data, next: 0 }];
  while (stack.length > 0) {
    const top = stack.at(-1)!;
    if (top.next === top.list.length) {
      stack.pop();
      continue;
    }
    const value = top.list[top.next++];
    if (!Array.isArray(value)) {
      flat.push(value);
    } else if (stack.length === MAX_DATA_DEPTH) {
      throw new HttpError(400, `input ${JSON.stringify(name)}: "data" is nested more than ${MAX_DATA_DEPTH} lists deep`);
    } else {
      stack.push({ list: value, next: 0 });
    }
  }
  return flat;
}

function checkCount(count: number, maxImages: number): void {
  if (count > maxImages) {
    throw new HttpError(400, `${count} images in one request, more than the ${maxImages} allowed per request; split the request`, {
      details: { reason: 'too-many-images' },
    });
  }
}

function typeOf(value: unknown): string {
  if (value === undefined) return 'nothing';
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a list';
  return `a ${typeof value}`;
}
