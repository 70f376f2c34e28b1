import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createRng } from '@imgpipe/kit';
import { parseByteSize, parseJsonObject } from './body.js';
import { HttpError } from './http-error.js';
import { decodeBase64, parseSeedRequest, parseV2InferRequest } from './request.js';

const b64 = (text: string) => Buffer.from(text).toString('base64');
const rejects400 = (fn: () => unknown, pattern: RegExp, item?: string) =>
  assert.throws(fn, (error: unknown) => {
    assert.ok(error instanceof HttpError, String(error));
    assert.equal(error.status, 400);
    assert.match(error.message, pattern);
    if (item !== undefined) assert.equal(error.item, item);
    return true;
  });

describe('request parsing', () => {
  it('parses the seed request', () => {
    const items = parseSeedRequest(
      {
        data: [
          { path: 'a.jpg', encoded: b64('A') },
          { path: 'b.jpg', encoded: `data:image/png;base64,${b64('BB')}` },
        ],
      },
      10,
    );
    assert.deepEqual(
      items.map((i) => [i.name, i.bytes.toString()]),
      [
        ['a.jpg', 'A'],
        ['b.jpg', 'BB'],
      ],
    );
  });

  it('names the bad item of a seed request', () => {
    rejects400(() => parseSeedRequest({}, 10), /"data" to be a list/);
    rejects400(() => parseSeedRequest({ data: [] }, 10), /empty/);
    rejects400(() => parseSeedRequest({ data: [{ path: 'a', encoded: b64('x') }, 7] }, 10), /data\[1\]: expected an object/, 'data[1]');
    rejects400(() => parseSeedRequest({ data: [{ encoded: b64('x') }] }, 10), /data\[0\]: missing "path"/, 'data[0]');
    rejects400(() => parseSeedRequest({ data: [{ path: 'a.jpg' }] }, 10), /"a\.jpg".*missing "encoded"/, 'a.jpg');
    rejects400(
      () => parseSeedRequest({ data: [{ path: 'a.jpg', encoded: 'not base64!' }] }, 10),
      /data\[0\] \("a\.jpg"\): not valid base64/,
      'a.jpg',
    );
    rejects400(() => parseSeedRequest({ data: [{ path: 'a.jpg', encoded: 12 }] }, 10), /expected a base64 string, got a number/, 'a.jpg');
    rejects400(
      () =>
        parseSeedRequest(
          {
            data: [
              { path: 'a', encoded: b64('x') },
              { path: 'a', encoded: b64('y') },
            ],
          },
          10,
        ),
      /same path as data\[0\]/,
      'a',
    );
    rejects400(() => parseSeedRequest({ data: [1, 2, 3].map((i) => ({ path: `${i}`, encoded: b64('x') })) }, 2), /3 images.*allowed per request/);
  });

  it('parses a V2 infer request with a BYTES input', () => {
    const parsed = parseV2InferRequest({ id: 'r1', inputs: [{ name: 'images', shape: [2], datatype: 'BYTES', data: [b64('A'), b64('B')] }] }, 10);
    assert.equal(parsed.id, 'r1');
    assert.equal(parsed.inputName, 'images');
    assert.deepEqual(
      parsed.items.map((i) => i.bytes.toString()),
      ['A', 'B'],
    );
    assert.equal(parsed.outputs, undefined);
    const nested = parseV2InferRequest(
      { inputs: [{ name: 'x', shape: [2, 1], datatype: 'BYTES', data: [[b64('A')], [b64('B')]] }], outputs: [{ name: 'labels' }] },
      10,
    );
    assert.equal(nested.items.length, 2);
    assert.deepEqual(nested.outputs, ['labels']);
  });

  it('names what is wrong with a V2 request', () => {
    rejects400(() => parseV2InferRequest({}, 10), /"inputs" to be a list with one BYTES tensor/);
    rejects400(() => parseV2InferRequest({ inputs: [{ name: 'x', shape: [1], datatype: 'FP32', data: [1] }] }, 10), /datatype "BYTES"/);
    rejects400(
      () => parseV2InferRequest({ inputs: [{ name: 'x', shape: [3], datatype: 'BYTES', data: [b64('A')] }] }, 10),
      /holds 3 elements but data has 1/,
    );
    rejects400(
      () => parseV2InferRequest({ inputs: [{ name: 'x', shape: [2], datatype: 'BYTES', data: [b64('A'), '%%%'] }] }, 10),
      /input "x" data\[1\]: not valid base64/,
      'input "x" data[1]',
    );
    rejects400(() => parseV2InferRequest({ inputs: [{ name: 'x', shape: 'a', datatype: 'BYTES', data: [b64('A')] }] }, 10), /"shape"/);
  });

  it('decodes strict base64 only', () => {
    assert.equal(decodeBase64(' QU JD\n', 'x').toString(), 'ABC');
    assert.equal(decodeBase64('_-8', 'x').length, 2);
    rejects400(() => decodeBase64('', 'x'), /empty image/);
    rejects400(() => decodeBase64('QUJDR', 'x'), /not valid base64/);
    rejects400(() => decodeBase64('QU=JD', 'x'), /not valid base64/);
  });

  it('the quick path for plain base64 accepts and refuses exactly what the strict checks do', () => {
    // The strict checks alone, as they were before the quick path: strip a data: URL and whitespace, then the alphabet,
    // at most two '=' at the end, and no length that leaves a single character over.
    const strict = (text: string): Buffer | undefined => {
      const compact = text.replace(/^data:[\w.+-]+\/[\w.+-]+(?:;[\w-]+=[\w.-]+)*;base64,/i, '').replace(/\s+/g, '');
      if (compact.length === 0 || !/^[A-Za-z0-9+/\-_]*={0,2}$/.test(compact) || compact.replace(/=+$/, '').length % 4 === 1) return undefined;
      return Buffer.from(compact, 'base64');
    };
    const alphabet = 'AQgw+/-_=== \n*.:;,é';
    const next = createRng(7);
    const samples = ['data:image/jpeg;base64,QUJD', 'QUJD=', 'QQ', 'QQ=', 'QQ==', 'Q===', 'QUJD\n', '=QUJD'];
    for (let i = 0; i < 20_000; i++) {
      const base = Buffer.from(Array.from({ length: Math.floor(next() * 9) }, () => Math.floor(next() * 256))).toString('base64');
      const chars = [...base];
      for (let edits = Math.floor(next() * 3); edits > 0; edits--) {
        chars.splice(Math.floor(next() * (chars.length + 1)), next() < 0.5 ? 1 : 0, alphabet[Math.floor(next() * alphabet.length)]!);
      }
      samples.push(chars.join(''));
    }
    for (const text of samples) {
      const expected = strict(text);
      let got: Buffer | undefined;
      try {
        got = decodeBase64(text, 'x');
      } catch (error) {
        assert.ok(error instanceof HttpError && error.status === 400, JSON.stringify(text));
      }
      assert.equal(got?.toString('hex'), expected?.toString('hex'), JSON.stringify(text));
    }
  });

  it('parses JSON objects and byte sizes', () => {
    assert.deepEqual(parseJsonObject('{"a":1}', ''), { a: 1 });
    assert.throws(
      () => parseJsonObject('{"a":', ''),
      (e: unknown) => e instanceof HttpError && e.status === 400 && /invalid JSON/.test(e.message),
    );
    assert.throws(() => parseJsonObject('[1]', 'like X'), /expected a JSON object like X, got an array/);
    assert.throws(() => parseJsonObject('', ''), /empty body/);
    assert.equal(parseByteSize('512', '--max-body'), 512);
    assert.equal(parseByteSize('16mb', '--max-body'), 16 * 1024 * 1024);
    assert.equal(parseByteSize('1.5k', '--max-body'), 1536);
    assert.throws(() => parseByteSize('lots', '--max-body'), /--max-body to be a size/);
  });
});
