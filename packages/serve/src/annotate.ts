import { encodeViewBase64, renderTextMask, type ImageFormat, type RgbImage } from '@imgpipe/images';

export type EchoMode = 'annotated' | 'raw';

/**
 * The picture sent back with the predicted label on it: a dark banner across the top with "label 98.1%" in white,
 * drawn straight into the pixels the model's input came from (upright, sRGB, already within --max-echo-pixels), and
 * encoded in the input's format (JPEG stays JPEG, WebP stays WebP, anything else becomes PNG), as base64.
 */
export async function annotateView(view: RgbImage, format: ImageFormat | undefined, label: string, probability: number): Promise<string> {
  await drawCaption(view, `${label} ${(probability * 100).toFixed(1)}%`);
  return encodeViewBase64(view, format);
}

/** Darken the top of `view` to 40% and write `caption` on it in white, in place. */
export async function drawCaption(view: RgbImage, caption: string): Promise<void> {
  const { width, height, data } = view;
  const bannerHeight = Math.max(12, Math.min(height, Math.round(Math.max(height, width / 4) * 0.12)));
  const characters = [...caption];
  // Bold sans glyphs are about 0.65 em wide: shrink the font so the caption fits the width.
  const fontSize = onLadder(Math.min(bannerHeight * 0.72, (width * 0.94) / (characters.length * 0.65)));
  const glyphs = await Promise.all(characters.map((character) => glyphFor(character, fontSize)));
  const bannerBytes = Math.min(height, bannerHeight) * width * 3;
  for (let i = 0; i < bannerBytes; i += 1) data[i] = (data[i]! * 0.4 + 0.5) | 0;
  const baseline = Math.round(bannerHeight * 0.78);
  let pen = Math.round(fontSize * 0.3);
  for (const glyph of glyphs) {
    const top = baseline - glyph.baseline;
    for (let row = 0; row < glyph.height; row += 1) {
      const y = top + row;
      if (y < 0 || y >= bannerHeight || y >= height) continue;
      for (let column = glyph.inkLeft; column <= glyph.inkRight; column += 1) {
        const coverage = glyph.mask[row * glyph.width + column]!;
        const x = pen + column - glyph.inkLeft;
        if (coverage === 0 || x >= width) continue;
        const at = (y * width + x) * 3;
        for (let c = 0; c < 3; c += 1) data[at + c] = (data[at + c]! + ((255 - data[at + c]!) * coverage + 127) / 255) | 0;
      }
    }
    pen += glyph.advance;
    if (pen >= width) break;
  }
}

/** One character's coverage at one size, with the columns its ink spans and how far the pen moves after it. */
interface Glyph {
  mask: Uint8Array;
  width: number;
  height: number;
  baseline: number;
  inkLeft: number;
  inkRight: number;
  advance: number;
}

// Font sizes in steps of about 10%: photos of many widths share the glyphs of a few sizes.
const FONT_SIZES = (() => {
  const sizes = [4];
  while (sizes.at(-1)! < 512) sizes.push(Math.max(sizes.at(-1)! + 1, Math.round(sizes.at(-1)! * 1.1)));
  return sizes;
})();

function onLadder(size: number): number {
  let chosen = FONT_SIZES[0]!;
  for (const candidate of FONT_SIZES) if (candidate <= size) chosen = candidate;
  return chosen;
}

// Rendered once per character and size (an SVG render each, ~1 ms); the oldest go first past the limit.
const GLYPH_CACHE_LIMIT = 4096;
const glyphs = new Map<string, Promise<Glyph>>();

function glyphFor(character: string, fontSize: number): Promise<Glyph> {
  const key = `${fontSize}:${character}`;
  let glyph = glyphs.get(key);
  if (!glyph) {
    glyph = renderGlyph(character, fontSize);
    glyphs.set(key, glyph);
    if (glyphs.size > GLYPH_CACHE_LIMIT) glyphs.delete(glyphs.keys().next().value!);
  }
  return glyph;
}

async function renderGlyph(character: string, fontSize: number): Promise<Glyph> {
  const box = {
    width: Math.ceil(fontSize * 1.6),
    height: Math.ceil(fontSize * 1.5),
    x: Math.ceil(fontSize * 0.2),
    baseline: Math.ceil(fontSize * 1.1),
  };
  // A character the renderer refuses (a control character) is drawn as a space rather than failing the answer.
  const mask = await renderTextMask(character, fontSize, box).catch(() => new Uint8Array(box.width * box.height));
  let inkLeft = box.width;
  let inkRight = -1;
  for (let row = 0; row < box.height; row += 1) {
    for (let column = 0; column < box.width; column += 1) {
      if (mask[row * box.width + column]! === 0) continue;
      inkLeft = Math.min(inkLeft, column);
      inkRight = Math.max(inkRight, column);
    }
  }
  const space = Math.round(fontSize * 0.33);
  if (inkRight < 0) return { mask, width: box.width, height: box.height, baseline: box.baseline, inkLeft: 0, inkRight: -1, advance: space };
  return {
    mask,
    width: box.width,
    height: box.height,
    baseline: box.baseline,
    inkLeft,
    inkRight,
    advance: inkRight - inkLeft + 1 + Math.max(1, Math.round(fontSize * 0.08)),
  };
}
