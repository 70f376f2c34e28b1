import { escapeXml } from '@imgpipe/kit';
import { num, shorten, svgDocument, text } from './svg.js';

/** Pixel size of the confusion-matrix plot for `classes` classes (tests and report.html use it). */
export function confusionPlotSize(classes: number): { width: number; height: number; cell: number } {
  const cell = Math.max(28, Math.min(96, Math.floor(480 / Math.max(1, classes))));
  return { width: Math.max(300, 150 + classes * cell + 30), height: 110 + classes * cell + 20, cell };
}

/**
 * The confusion matrix as an SVG heat map: rows are the true class, columns the predicted class, in label order.
 * Each cell shows its count and its share of the row (the recall of that class on the diagonal).
 */
export function confusionMatrixSvg(
  matrix: readonly (readonly number[])[],
  labels: readonly string[],
  title = 'Confusion matrix (test split)',
): string {
  const classes = labels.length;
  const { width, height, cell } = confusionPlotSize(classes);
  const left = 150;
  const top = 110;
  const body: string[] = [text(12, 24, title, { 'font-size': 15, 'font-weight': 'bold' })];
  body.push(text(left + (classes * cell) / 2, 52, 'predicted', { 'text-anchor': 'middle', 'font-size': 13 }));
  body.push(
    text(18, top + (classes * cell) / 2, 'true', {
      'font-size': 13,
      transform: `rotate(-90 18 ${num(top + (classes * cell) / 2)})`,
      'text-anchor': 'middle',
    }),
  );
  const fontSize = Math.max(9, Math.min(16, cell / 4));
  labels.forEach((label, c) => {
    const name = shorten(label, Math.max(3, Math.floor(cell / 7)));
    body.push(text(left + c * cell + cell / 2, top - 10, name, { 'text-anchor': 'middle', 'font-size': 11 }));
    body.push(text(left - 8, top + c * cell + cell / 2 + 4, shorten(label, 18), { 'text-anchor': 'end', 'font-size': 11 }));
  });
  matrix.forEach((row, r) => {
    const total = row.reduce((a, b) => a + b, 0);
    row.forEach((count, c) => {
      const share = total === 0 ? 0 : count / total;
      // White to blue by the row share; text turns white on dark cells.
      const shade = Math.round(255 - share * 200);
      const fill = `rgb(${shade},${Math.round(255 - share * 120)},255)`;
      const x = left + c * cell;
      const y = top + r * cell;
      body.push(`<rect x="${x}" y="${y}" width="${cell}" height="${cell}" fill="${fill}" stroke="#888" stroke-width="1"/>`);
      const colour = share > 0.6 ? '#ffffff' : '#111111';
      body.push(
        text(x + cell / 2, y + cell / 2 + (cell >= 48 ? 0 : fontSize / 3), String(count), {
          'text-anchor': 'middle',
          'font-size': fontSize,
          fill: colour,
          'font-weight': r === c ? 'bold' : 'normal',
        }),
      );
      if (cell >= 48)
        body.push(
          text(x + cell / 2, y + cell / 2 + fontSize, `${(share * 100).toFixed(0)}%`, {
            'text-anchor': 'middle',
            'font-size': fontSize * 0.7,
            fill: colour,
          }),
        );
    });
  });
  return svgDocument(width, height, body).replace('<svg ', `<svg aria-label="${escapeXml(title)}" `);
}
