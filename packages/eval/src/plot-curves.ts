import type { TrialEpochPoint } from '@imgpipe/kit';
import { num, shorten, svgDocument, text } from './svg.js';

/** One epoch of a curve: a trial's epoch as read back from the run directory. */
export type EpochPoint = TrialEpochPoint;

export interface TrialCurve {
  /** Short name shown in the legend and the report, e.g. "t03 lr=0.001 layer=256". */
  label: string;
  best: boolean;
  epochs: EpochPoint[];
}

export const CURVES_SIZE = { width: 960, height: 440 } as const;

const PANEL = { width: 400, height: 300, top: 80, lefts: [70, 550] } as const;
const BEST = { train: '#d95f02', val: '#1b9e77' };
const OTHER = '#a9b4c2';

/**
 * Learning curves: loss (left) and accuracy (right) per epoch, train dashed and validation solid, one pair of
 * lines per trial in grey with the best trial drawn on top in colour.
 */
export function learningCurvesSvg(trials: readonly TrialCurve[], title = 'Learning curves'): string {
  const { width, height } = CURVES_SIZE;
  const maxEpoch = Math.max(1, ...trials.flatMap((t) => t.epochs.map((e) => e.epoch)));
  const losses = trials.flatMap((t) => t.epochs.flatMap((e) => [e.train_loss, e.val_loss])).filter((v): v is number => Number.isFinite(v));
  const maxLoss = niceCeil(Math.max(0.1, ...losses));
  const body: string[] = [text(PANEL.lefts[0], 26, title, { 'font-size': 15, 'font-weight': 'bold' })];
  const best = trials.find((t) => t.best);
  body.push(
    text(PANEL.lefts[0], 50, best ? `best: ${shorten(best.label, 60)}` : 'no best trial recorded', { fill: BEST.val, 'font-size': 12 }),
    legend(PANEL.lefts[1], 44),
  );
  const panels = [
    { left: PANEL.lefts[0], name: 'loss', max: maxLoss, train: (e: EpochPoint) => e.train_loss, val: (e: EpochPoint) => e.val_loss },
    { left: PANEL.lefts[1], name: 'accuracy', max: 1, train: (e: EpochPoint) => e.train_accuracy, val: (e: EpochPoint) => e.val_accuracy },
  ];
  for (const panel of panels) {
    const x = (epoch: number) => panel.left + (maxEpoch === 1 ? PANEL.width / 2 : ((epoch - 1) / (maxEpoch - 1)) * PANEL.width);
    const y = (value: number) => PANEL.top + PANEL.height - (Math.min(Math.max(value, 0), panel.max) / panel.max) * PANEL.height;
    body.push(axes(panel.left, panel.name, panel.max, maxEpoch, x));
    // Others first, the best last so it is drawn on top.
    for (const trial of [...trials.filter((t) => !t.best), ...trials.filter((t) => t.best)]) {
      for (const [pick, dashed] of [
        [panel.train, true],
        [panel.val, false],
      ] as const) {
        const colour = trial.best ? (dashed ? BEST.train : BEST.val) : OTHER;
        body.push(
          polyline(
            trial.epochs.map((e) => [e.epoch, pick(e)] as const),
            x,
            y,
            colour,
            trial.best ? 2.5 : 1.2,
            dashed,
          ),
        );
      }
    }
  }
  return svgDocument(width, height, body);
}

function polyline(
  points: readonly (readonly [number, number | undefined])[],
  x: (e: number) => number,
  y: (v: number) => number,
  colour: string,
  strokeWidth: number,
  dashed: boolean,
): string {
  // Non-finite values (a diverged trial) break the line rather than drawing to infinity.
  const runs: string[][] = [[]];
  for (const [epoch, value] of points) {
    if (value === undefined || !Number.isFinite(value)) runs.push([]);
    else runs.at(-1)!.push(`${num(x(epoch))},${num(y(value))}`);
  }
  const dash = dashed ? ' stroke-dasharray="6 4"' : '';
  return runs
    .filter((run) => run.length > 0)
    .map((run) =>
      run.length === 1
        ? `<circle cx="${run[0]!.split(',')[0]}" cy="${run[0]!.split(',')[1]}" r="${num(strokeWidth + 1)}" fill="${colour}"/>`
        : `<polyline points="${run.join(' ')}" fill="none" stroke="${colour}" stroke-width="${strokeWidth}"${dash}/>`,
    )
    .join('');
}

function axes(left: number, name: string, max: number, maxEpoch: number, x: (e: number) => number): string {
  const { top, width, height } = PANEL;
  const parts = [`<rect x="${left}" y="${top}" width="${width}" height="${height}" fill="#fafafa" stroke="#999"/>`];
  for (let i = 0; i <= 4; i++) {
    const value = (max * i) / 4;
    const yy = top + height - (i / 4) * height;
    parts.push(`<line x1="${left}" y1="${num(yy)}" x2="${left + width}" y2="${num(yy)}" stroke="#e3e3e3"/>`);
    parts.push(text(left - 6, yy + 4, formatTick(value), { 'text-anchor': 'end', 'font-size': 10 }));
  }
  const step = Math.max(1, Math.ceil(maxEpoch / 10));
  for (let epoch = 1; epoch <= maxEpoch; epoch += step)
    parts.push(text(x(epoch), top + height + 16, String(epoch), { 'text-anchor': 'middle', 'font-size': 10 }));
  parts.push(text(left + width / 2, top + height + 34, 'epoch', { 'text-anchor': 'middle', 'font-size': 11 }));
  parts.push(text(left, top - 8, name, { 'font-size': 13, 'font-weight': 'bold' }));
  return parts.join('');
}

function legend(left: number, y: number): string {
  const item = (dx: number, colour: string, dashed: boolean, label: string) =>
    `<line x1="${left + dx}" y1="${y - 4}" x2="${left + dx + 26}" y2="${y - 4}" stroke="${colour}" stroke-width="2.5"${dashed ? ' stroke-dasharray="6 4"' : ''}/>` +
    text(left + dx + 32, y, label, { 'font-size': 11 });
  return item(0, BEST.train, true, 'best train') + item(110, BEST.val, false, 'best val') + item(210, OTHER, false, 'other trials');
}

function niceCeil(value: number): number {
  const magnitude = 10 ** Math.floor(Math.log10(value));
  for (const step of [1, 2, 2.5, 5, 10]) if (step * magnitude >= value) return step * magnitude;
  return 10 * magnitude;
}

function formatTick(value: number): string {
  return Number.isInteger(value) ? String(value) : value.toFixed(value < 1 ? 2 : 1);
}
