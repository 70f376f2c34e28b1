import type { Rng } from '@imgpipe/kit';
import sharp from 'sharp';

/**
 * The SVG of one generated image. Class 0 ("cat"): warm hues (red..yellow), round bodies with two triangle ears.
 * Class 1 ("dog"): cool hues (cyan..blue), long rectangles with legs. Other labels rotate the hue further.
 * Backgrounds are low-saturation gradients with grey clutter, so colour and shape of the subject carry the class.
 */
export function drawShapesSvg(rng: Rng, label: number, width: number, height: number): string {
  const between = (low: number, high: number) => low + rng() * (high - low);
  const short = Math.min(width, height);
  const parts: string[] = [];

  const bgHue = between(0, 360);
  const bgA = hsl(bgHue, between(0, 14), between(30, 85));
  const bgB = hsl(bgHue + between(-40, 40), between(0, 14), between(30, 85));
  parts.push(
    `<defs><linearGradient id="bg" x1="0" y1="0" x2="${between(0, 1).toFixed(2)}" y2="1">` +
      `<stop offset="0" stop-color="${bgA}"/><stop offset="1" stop-color="${bgB}"/></linearGradient></defs>`,
    `<rect width="${width}" height="${height}" fill="url(#bg)"/>`,
  );
  // Grey clutter: lines and dots of no class.
  const clutter = Math.floor(between(0, 5));
  for (let i = 0; i < clutter; i++) {
    const grey = hsl(0, 0, between(15, 95));
    if (rng() < 0.5) {
      parts.push(
        `<line x1="${f(between(0, width))}" y1="${f(between(0, height))}" x2="${f(between(0, width))}" y2="${f(between(0, height))}" ` +
          `stroke="${grey}" stroke-width="${f(between(1, short * 0.03))}"/>`,
      );
    } else {
      parts.push(`<circle cx="${f(between(0, width))}" cy="${f(between(0, height))}" r="${f(between(2, short * 0.05))}" fill="${grey}"/>`);
    }
  }

  const subjects = rng() < 0.25 ? 2 : 1;
  for (let i = 0; i < subjects; i++) {
    const size = (short * between(0.28, 0.45)) / (subjects === 2 ? 1.25 : 1);
    const cx = between(size * 0.8, width - size * 0.8);
    const cy = between(size * 0.8, height - size * 0.8);
    const angle = between(-25, 25);
    const extraHue = Math.floor(label / 2) * 60;
    parts.push(label % 2 === 0 ? cat(size, cx, cy, angle, extraHue) : dog(size, cx, cy, angle, extraHue));
  }
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}">${parts.join('')}</svg>`;

  function cat(size: number, cx: number, cy: number, angle: number, extraHue: number): string {
    const colour = hsl(between(0, 45) + extraHue, between(70, 100), between(45, 62));
    const rx = size * between(0.55, 0.8);
    const ry = size * between(0.5, 0.7);
    const ear = size * between(0.35, 0.5);
    const earX = rx * 0.55;
    const top = -ry * 0.75;
    const eye = hsl(0, 0, between(0, 20));
    return (
      `<g transform="translate(${f(cx)} ${f(cy)}) rotate(${f(angle)})" fill="${colour}">` +
      `<polygon points="${f(-earX - ear * 0.5)},${f(top + ear * 0.3)} ${f(-earX)},${f(top - ear)} ${f(-earX + ear * 0.5)},${f(top)}"/>` +
      `<polygon points="${f(earX - ear * 0.5)},${f(top)} ${f(earX)},${f(top - ear)} ${f(earX + ear * 0.5)},${f(top + ear * 0.3)}"/>` +
      `<ellipse cx="0" cy="0" rx="${f(rx)}" ry="${f(ry)}"/>` +
      `<circle cx="${f(-rx * 0.35)}" cy="${f(-ry * 0.15)}" r="${f(size * 0.07)}" fill="${eye}"/>` +
      `<circle cx="${f(rx * 0.35)}" cy="${f(-ry * 0.15)}" r="${f(size * 0.07)}" fill="${eye}"/>` +
      `</g>`
    );
  }

  function dog(size: number, cx: number, cy: number, angle: number, extraHue: number): string {
    const colour = hsl(between(185, 245) + extraHue, between(60, 100), between(35, 55));
    const length = size * between(1.5, 1.9);
    const body = size * between(0.45, 0.6);
    const leg = size * between(0.35, 0.5);
    const legWidth = body * 0.28;
    const x0 = -length / 2;
    const y0 = -body / 2;
    return (
      `<g transform="translate(${f(cx)} ${f(cy)}) rotate(${f(angle)})" fill="${colour}">` +
      `<rect x="${f(x0)}" y="${f(y0)}" width="${f(length)}" height="${f(body)}" rx="${f(body * 0.12)}"/>` +
      `<rect x="${f(x0 + length * 0.06)}" y="${f(-y0 - 1)}" width="${f(legWidth)}" height="${f(leg)}"/>` +
      `<rect x="${f(-x0 - length * 0.06 - legWidth)}" y="${f(-y0 - 1)}" width="${f(legWidth)}" height="${f(leg)}"/>` +
      `<rect x="${f(-x0 - body * 0.2)}" y="${f(y0 - body * 0.55)}" width="${f(body * 0.75)}" height="${f(body * 0.7)}"/>` +
      `</g>`
    );
  }
}

function hsl(hue: number, saturation: number, lightness: number): string {
  return `hsl(${f(((hue % 360) + 360) % 360)},${f(saturation)}%,${f(lightness)}%)`;
}

function f(value: number): string {
  return value.toFixed(2);
}

/** One JPEG of class `label`: SVG shapes rasterised by sharp, plus seeded noise, encoded at `quality`. */
export async function drawImage(rng: Rng, label: number, width: number, height: number, quality = 88): Promise<Buffer> {
  const svg = drawShapesSvg(rng, label, width, height);
  const { data } = await sharp(Buffer.from(svg)).removeAlpha().raw().toBuffer({ resolveWithObject: true });
  // Seeded noise from a table of 8,191 values, each row read from a seeded offset: fast for large images,
  // deterministic, and without visible structure under JPEG compression.
  const sigma = 4 + rng() * 10;
  const table = new Float32Array(8191);
  for (let i = 0; i < table.length; i++) table[i] = (rng() + rng() - 1) * sigma * 1.7;
  const rowLength = width * 3;
  for (let row = 0; row < height; row++) {
    let j = Math.floor(rng() * table.length);
    for (let i = row * rowLength; i < (row + 1) * rowLength; i++, j = j + 1 === table.length ? 0 : j + 1) {
      data[i] = Math.max(0, Math.min(255, Math.round(data[i]! + table[j]!)));
    }
  }
  return sharp(data, { raw: { width, height, channels: 3 } })
    .jpeg({ quality })
    .toBuffer();
}
