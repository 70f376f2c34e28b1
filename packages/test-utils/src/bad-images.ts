import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { constants, crc32, deflateRawSync, deflateSync } from 'node:zlib';
import type { Rng } from '@imgpipe/kit';
import { drawImage } from './shapes.js';

/** images' RejectReason, spelt out here because test-utils stands on kit and s3 only (images' tests use it). */
type RejectReason = 'missing' | 'empty' | 'not-an-image' | 'unsupported-format' | 'unreadable' | 'too-large' | 'too-slow' | 'decompression-bomb';

export interface BadImage {
  /** Path relative to the set's directory. */
  file: string;
  /** What images' decodeToTensor must say about it. */
  reason: RejectReason;
}

/** The bad-file fixtures, written under dir/sub: each one is a way a real image set goes wrong. */
export async function writeBadImages(dir: string, sub: string, rng: Rng): Promise<BadImage[]> {
  await mkdir(join(dir, sub), { recursive: true });
  const jpeg = await drawImage(rng, 0, 120, 90);
  const files: [string, Uint8Array | string, RejectReason][] = [
    [`${sub}/truncated.jpg`, jpeg.subarray(0, Math.floor(jpeg.length / 2)), 'unreadable'],
    [`${sub}/notes.jpg`, 'This is a text file that someone named .jpg\n', 'not-an-image'],
    [`${sub}/empty.jpg`, new Uint8Array(0), 'empty'],
    [`${sub}/bomb.png`, bombPng(50_000, 50_000), 'decompression-bomb'],
  ];
  for (const [file, data] of files) await writeFile(join(dir, file), data);
  return files.map(([file, , reason]) => ({ file, reason }));
}

/** A small PNG whose header declares width x height RGB pixels (a decompression bomb as far as headers go). */
export function bombPng(width: number, height: number): Buffer {
  const header = Buffer.alloc(13);
  header.writeUInt32BE(width, 0);
  header.writeUInt32BE(height, 4);
  header[8] = 8; // bit depth
  header[9] = 2; // colour type: RGB
  const data = deflateSync(Buffer.alloc((width * 3 + 1) * 16));
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    pngChunk('IHDR', header),
    pngChunk('IDAT', data),
    pngChunk('IEND', Buffer.alloc(0)),
  ]);
}

function pngChunk(type: string, data: Buffer): Buffer {
  const length = Buffer.alloc(4);
  length.writeUInt32BE(data.length);
  const body = Buffer.concat([Buffer.from(type, 'latin1'), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(body));
  return Buffer.concat([length, body, crc]);
}

/**
 * A real decompression bomb: a valid RGB PNG of width x height zeros, every row present (about 340 pixels per byte).
 * Built in milliseconds whatever its size: a run of zero rows is deflated once, ended by a full flush (byte-aligned,
 * no back-references across it), and repeated; the zlib trailer's Adler-32 of n zero bytes is 1 + (n mod 65521) << 16.
 */
export function zeroPng(width: number, height: number): Buffer {
  const rowBytes = width * 3 + 1;
  const rowsPerRun = Math.max(1, Math.min(height, Math.floor((8 << 20) / rowBytes)));
  const run = deflateRawSync(Buffer.alloc(rowsPerRun * rowBytes), { level: 9, finishFlush: constants.Z_FULL_FLUSH });
  const lastRows = height % rowsPerRun;
  const blocks = Array.from({ length: Math.floor(height / rowsPerRun) }, () => run);
  if (lastRows > 0) blocks.push(deflateRawSync(Buffer.alloc(lastRows * rowBytes), { level: 9, finishFlush: constants.Z_FULL_FLUSH }));
  const adler = Buffer.alloc(4);
  adler.writeUInt32BE((((rowBytes * height) % 65521) * 65536 + 1) >>> 0);
  const zlibStream = Buffer.concat([Buffer.from([0x78, 0xda]), ...blocks, deflateRawSync(Buffer.alloc(0)), adler]);
  const header = Buffer.alloc(13);
  header.writeUInt32BE(width, 0);
  header.writeUInt32BE(height, 4);
  header[8] = 8;
  header[9] = 2;
  const signature = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  return Buffer.concat([signature, pngChunk('IHDR', header), pngChunk('IDAT', zlibStream), pngChunk('IEND', Buffer.alloc(0))]);
}

/** A small SVG that asks the renderer for a large, expensive drawing (the 672-byte, 11 s case in spirit). */
export function heavySvg(side = 20_000): Buffer {
  const blur = `<filter id="b"><feGaussianBlur stdDeviation="300"/></filter>`;
  return Buffer.from(
    `<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" width="${side}" height="${side}">${blur}` +
      `<rect width="100%" height="100%" fill="red" filter="url(#b)"/></svg>`,
  );
}
