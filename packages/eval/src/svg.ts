import { escapeXml } from '@imgpipe/kit';

/** Tiny helpers for writing SVG by hand: numbers, text (escaped with kit's escapeXml). */

const FONT = 'DejaVu Sans, Arial, Helvetica, sans-serif';

/** A coordinate with at most two decimals, so the SVG (and the PNG made from it) is the same on every run. */
export function num(value: number): string {
  return String(Math.round(value * 100) / 100);
}

export function text(x: number, y: number, content: string, attrs: Record<string, string | number> = {}): string {
  const extra = Object.entries({ 'font-family': FONT, 'font-size': 12, fill: '#222', ...attrs })
    .map(([k, v]) => `${k}="${typeof v === 'number' ? num(v) : escapeXml(v)}"`)
    .join(' ');
  return `<text x="${num(x)}" y="${num(y)}" ${extra}>${escapeXml(content)}</text>`;
}

export function svgDocument(width: number, height: number, body: string[]): string {
  return (
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}">` +
    `<rect width="${width}" height="${height}" fill="#ffffff"/>${body.join('')}</svg>\n`
  );
}

/** Cut a label to `max` characters with an ellipsis, so long class names do not run over the plot. */
export function shorten(label: string, max: number): string {
  return label.length <= max ? label : `${label.slice(0, Math.max(1, max - 1))}…`;
}
