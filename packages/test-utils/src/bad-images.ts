import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { crc32, createDeflate, deflateSync } from 'node:zlib';
import type { RejectReason } from '@imgpipe/images';
import type { Rng } from '@imgpipe/kit';
import { drawImage } from './shapes.js';

export interface BadImage {
  /** Path relative to the set's directory. */
  file: string;
  /** What core's decodeToTensor must say about it. */
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

/** A real decompression bomb: a valid RGB PNG of width x height zeros, every row present (about 340 pixels per byte). */
export async function zeroPng(width: number, height: number): Promise<Buffer> {
  const deflate = createDeflate({ level: 9 });
  const out: Buffer[] = [];
  deflate.on('data', (chunk: Buffer) => out.push(chunk));
  const row = Buffer.alloc(width * 3 + 1);
  for (let y = 0; y < height; y += 1) if (!deflate.write(row)) await new Promise((resolve) => deflate.once('drain', resolve));
  const ended = new Promise((resolve) => deflate.once('end', resolve));
  deflate.end();
  await ended;
  const header = Buffer.alloc(13);
  header.writeUInt32BE(width, 0);
  header.writeUInt32BE(height, 4);
  header[8] = 8;
  header[9] = 2;
  const signature = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  return Buffer.concat([signature, pngChunk('IHDR', header), pngChunk('IDAT', Buffer.concat(out)), pngChunk('IEND', Buffer.alloc(0))]);
}

/** A small SVG that asks the renderer for a large, expensive drawing (the 672-byte, 11 s case in spirit). */
export function heavySvg(side = 20_000): Buffer {
  const blur = `<filter id="b"><feGaussianBlur stdDeviation="300"/></filter>`;
  return Buffer.from(
    `<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" width="${side}" height="${side}">${blur}` +
      `<rect width="100%" height="100%" fill="red" filter="url(#b)"/></svg>`,
  );
}
