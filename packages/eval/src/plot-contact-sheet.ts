import { num, shorten, svgDocument, text } from './svg.js';

interface SheetTile {
  /** The image as PNG bytes; drawn scaled to the tile, pixel edges kept sharp. */
  png: Buffer;
  /** Up to three short lines under the image. */
  caption: string[];
}

const TILE = { image: 128, pad: 12, captionLine: 14, lines: 3 } as const;
const HEADER = 44;

/** Pixel size of a contact sheet of `count` tiles, `columns` across (at least one row, even when empty). */
export function contactSheetSize(count: number, columns = 4): { width: number; height: number } {
  const cols = Math.max(1, Math.min(columns, Math.max(count, 1)));
  const rows = Math.max(1, Math.ceil(count / cols));
  const tileW = TILE.image + TILE.pad * 2;
  const tileH = TILE.image + TILE.pad * 2 + TILE.captionLine * TILE.lines;
  return { width: Math.max(320, cols * tileW), height: HEADER + rows * tileH };
}

/** A grid of labelled images: eval-model's most confident mistakes. */
export function contactSheetSvg(tiles: readonly SheetTile[], title: string, columns = 4): string {
  const { width, height } = contactSheetSize(tiles.length, columns);
  const cols = Math.max(1, Math.min(columns, Math.max(tiles.length, 1)));
  const tileW = TILE.image + TILE.pad * 2;
  const tileH = TILE.image + TILE.pad * 2 + TILE.captionLine * TILE.lines;
  const body: string[] = [text(TILE.pad, 28, title, { 'font-size': 15, 'font-weight': 'bold' })];
  if (tiles.length === 0) body.push(text(TILE.pad, HEADER + 40, 'No mistakes on the test split.', { 'font-size': 13 }));
  tiles.forEach((tile, i) => {
    const x = (i % cols) * tileW + TILE.pad;
    const y = HEADER + Math.floor(i / cols) * tileH + TILE.pad;
    body.push(
      `<image x="${x}" y="${y}" width="${TILE.image}" height="${TILE.image}" preserveAspectRatio="xMidYMid meet" ` +
        `style="image-rendering:pixelated" href="data:image/png;base64,${tile.png.toString('base64')}"/>`,
      `<rect x="${num(x - 0.5)}" y="${num(y - 0.5)}" width="${TILE.image + 1}" height="${TILE.image + 1}" fill="none" stroke="#c0392b" stroke-width="1"/>`,
    );
    tile.caption.slice(0, TILE.lines).forEach((line, k) => {
      body.push(text(x, y + TILE.image + 14 + k * TILE.captionLine, shorten(line, 22), { 'font-size': 11, fill: k === 0 ? '#111' : '#555' }));
    });
  });
  return svgDocument(width, height, body);
}
