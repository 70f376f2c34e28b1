import { escapeXml as esc, type TrialSummary } from '@imgpipe/kit';
import type { EvalResult } from './eval-result.js';

/** Four significant decimals for tables; empty for a missing value. */
function fmt(value: number | null | undefined, digits = 4): string {
  return value === null || value === undefined || !Number.isFinite(value) ? '' : value.toFixed(digits);
}

function table(head: string[], rows: string[][], rowClass: (i: number) => string = () => ''): string {
  const th = head.map((h) => `<th>${esc(h)}</th>`).join('');
  const trs = rows.map((r, i) => `<tr${rowClass(i) ? ` class="${rowClass(i)}"` : ''}>${r.map((c) => `<td>${c}</td>`).join('')}</tr>`).join('\n');
  return `<table>\n<thead><tr>${th}</tr></thead>\n<tbody>\n${trs}\n</tbody>\n</table>`;
}

/**
 * report.html: a static page (no scripts, no network) next to eval.json, showing the test metrics, the plots by
 * relative path, the trial table with the best trial marked, and the worst mistakes. `stylesheet` (kit's
 * readStylesheet(), the look serve's page shares) goes in a style block, so the report is one file that reads the
 * same opened from disk, from S3 or through serve; links are relative, so the run directory can move.
 */
export function renderReport(result: EvalResult, trials: readonly TrialSummary[], title: string, stylesheet: string): string {
  const best = result.model.trial;
  const wrong = result.count - result.confusion_matrix.reduce((sum, row, i) => sum + (row[i] ?? 0), 0);
  const paramKeys = [...new Set(trials.flatMap((t) => Object.keys(t.params)))];
  const trialRows = trials.map((t) => [
    esc(t.id) + (t.id === best ? ' <strong>(best)</strong>' : ''),
    ...paramKeys.map((k) => esc(String(t.params[k] ?? ''))),
    esc(t.status) + (t.reason ? ` <span class="muted">${esc(t.reason)}</span>` : ''),
    fmt(t.train_loss),
    fmt(t.train_accuracy),
    fmt(t.val_loss),
    fmt(t.val_accuracy),
  ]);
  const plots = result.files.plots;
  const figure = (key: string, caption: string) =>
    plots[key] ? `<figure><img src="${esc(plots[key]!)}" alt="${esc(caption)}"><figcaption>${esc(caption)}</figcaption></figure>` : '';
  const summary = [
    ['test accuracy', fmt(result.test_accuracy)],
    ['test loss', fmt(result.test_loss)],
    ...(result.roc_auc === null ? [] : [[`ROC AUC (${result.labels[1]} vs ${result.labels[0]})`, fmt(result.roc_auc)]]),
    ['test images', String(result.count)],
    ...(result.gate
      ? [['quality gate', `${result.gate.passed ? 'passed' : '<strong class="bad">failed</strong>'}: accuracy &ge; ${result.gate.min_accuracy}`]]
      : []),
    ['model', `${esc(result.model.path)} <span class="muted">sha256 ${esc(result.model.sha256.slice(0, 12))}</span>`],
    ['dataset', `${esc(result.dataset.path)} <span class="muted">manifest sha256 ${esc(result.dataset.manifest_sha256.slice(0, 12))}</span>`],
    ['device', esc(result.device)],
  ];
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${esc(title)}</title>
<style>
${stylesheet}</style>
</head>
<body>
<h1>${esc(title)}</h1>
<h2>Test split</h2>
${table(
  ['metric', 'value'],
  summary.map(([k, v]) => [esc(k!), v!]),
)}
<h2>Per class</h2>
${table(
  ['class', 'precision', 'recall', 'F1', 'support'],
  result.labels.map((label) => {
    const m = result.per_class[label]!;
    return [esc(label), fmt(m.precision), fmt(m.recall), fmt(m.f1), String(m.support)];
  }),
)}
${figure('confusion_matrix', 'Confusion matrix: rows are the true class, columns the predicted class')}
<h2>Trials</h2>
${trials.length === 0 ? '<p class="muted">No trials.jsonl in this run.</p>' : table(['trial', ...paramKeys, 'status', 'train loss', 'train acc', 'val loss', 'val acc'], trialRows, (i) => (trials[i]!.id === best ? 'best' : ''))}
${figure('learning_curves', 'Learning curves: train (dashed) and validation (solid) per epoch; the best trial in colour')}
<h2>Most confident mistakes</h2>
${figure('worst_mistakes', 'Test images the model got wrong with the highest confidence')}
${
  wrong === 0
    ? '<p>No mistakes on the test split.</p>'
    : result.worst.length === 0
      ? `<p>${wrong} mistakes, none listed (--worst 0).</p>`
      : table(
          ['row', 'source', 'true', 'predicted', 'probability'],
          result.worst.map((w) => [String(w.row), esc(w.source), esc(w.true), esc(w.predicted), fmt(w.probability, 3)]),
        )
}
<p class="muted">Files: <a href="eval.json">eval.json</a>, <a href="${esc(result.files.predictions)}">${esc(result.files.predictions)}</a>.</p>
</body>
</html>
`;
}
