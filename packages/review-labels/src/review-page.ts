import { createHash } from 'node:crypto';
import { escapeXml as esc, LABEL_DECISION_COLUMNS, LABEL_DECISIONS_FILE } from '@imgpipe/kit';
import { REVIEW_PAGE_SCRIPT } from './review-page-script.js';

/** One issue as the page shows it. */
export interface PageItem {
  rank: number;
  /** data: URI of the thumbnail. */
  thumbnail: string;
  source: string;
  split: string;
  sha256: string;
  given: number;
  /** -1 when there is nothing to suggest. */
  suggested: number;
  kinds: string[];
  why: string;
  probabilities: number[];
}

interface ReviewPageInput {
  title: string;
  classes: string[];
  items: PageItem[];
  /** How many issues there were in all (the page may show the first ones only). */
  total: number;
  stylesheet: string;
}

const PAGE_STYLE = `
.review-help kbd { border: 1px solid #bbb; border-radius: 3px; padding: 0 4px; font-size: 0.9em; }
.issue { display: flex; gap: 1em; align-items: flex-start; border: 2px solid transparent; border-radius: 6px; padding: 0.5em; margin: 0.4em 0; }
.issue.current { border-color: #2d6cdf; }
.issue img { width: 128px; height: 128px; object-fit: contain; image-rendering: pixelated; background: #eee; flex: none; }
.issue[data-decision="keep"] { background: #eef8ee; }
.issue[data-decision="relabel"] { background: #fff6e0; }
.issue[data-decision="drop"] { background: #fbeaea; }
.issue .why { margin: 0.3em 0; }
.issue .decision { font-weight: bold; }
.issue button { margin-right: 0.3em; }
`;

function sha256Base64(text: string): string {
  return createHash('sha256').update(text).digest('base64');
}

/** JSON for a script block: '<' escaped, so no text in it can close the block. */
function jsonForScript(value: unknown): string {
  return JSON.stringify(value)
    .replace(/</g, '\\u003c')
    .replace(/\u2028/g, '\\u2028')
    .replace(/\u2029/g, '\\u2029');
}

/**
 * label-review.html: one self-contained file (styles, script and thumbnails inline; nothing fetched), with a strict
 * Content-Security-Policy that allows only its own style and script (by hash) and data: images, so it reads the
 * same opened from disk or from S3. Every label and file name is escaped text.
 */
export function renderReviewPage(input: ReviewPageInput): string {
  const { classes, items } = input;
  const style = `\n${input.stylesheet}${PAGE_STYLE}`;
  const script = REVIEW_PAGE_SCRIPT;
  const csp = [
    "default-src 'none'",
    'img-src data:',
    `style-src 'sha256-${sha256Base64(style)}'`,
    `script-src 'sha256-${sha256Base64(script)}'`,
    "base-uri 'none'",
    "form-action 'none'",
  ].join('; ');
  const data = {
    file: LABEL_DECISIONS_FILE,
    columns: LABEL_DECISION_COLUMNS,
    classes,
    items: items.map((item) => ({ sha256: item.sha256, source: item.source, split: item.split, given: item.given, suggested: item.suggested })),
  };
  const pct = (p: number | undefined) => (p === undefined ? '' : `${(p * 100).toFixed(1)}%`);
  const articles = items.map((item, i) => {
    const relabelButtons = classes
      .map((name, c) =>
        c === item.given ? '' : `<button type="button" data-action="relabel" data-label="${c}" title="key ${c + 1}">relabel: ${esc(name)}</button>`,
      )
      .join('');
    return `<article class="issue" data-index="${i}">
<img src="${esc(item.thumbnail)}" alt="image ${item.rank}">
<div>
<p><strong>#${item.rank}</strong> ${esc(item.kinds.join(', '))}: given <strong class="given">${esc(classes[item.given] ?? '')}</strong>${item.suggested >= 0 ? `, suggested <strong class="suggested">${esc(classes[item.suggested] ?? '')}</strong>` : ''} &middot; <span class="decision">undecided</span></p>
<p class="why">${esc(item.why)}</p>
<p class="muted"><span class="source">${esc(item.source)}</span> &middot; ${esc(item.split)} &middot; ${classes.map((name, c) => `${esc(name)} ${pct(item.probabilities[c])}`).join(', ')}</p>
<p><button type="button" data-action="keep">keep (c)</button><button type="button" data-action="drop">drop (d)</button>${relabelButtons}<button type="button" data-action="undo">undo (u)</button></p>
</div>
</article>`;
  });
  const keys = classes
    .slice(0, 9)
    .map((name, c) => `<kbd>${c + 1}</kbd> relabel to ${esc(name)}`)
    .join(', ');
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="${esc(csp)}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${esc(input.title)}</title>
<style>${style}</style>
</head>
<body>
<h1>${esc(input.title)}</h1>
<p class="review-help"><kbd>j</kbd>/<kbd>k</kbd> next/previous, <kbd>c</kbd> keep, <kbd>r</kbd> relabel to the suggestion, <kbd>d</kbd> drop, <kbd>u</kbd> undo, ${keys}; <kbd>e</kbd> or the button exports ${esc(LABEL_DECISIONS_FILE)} for <code>prep-data --decisions</code>.</p>
<p><button type="button" id="export">Export ${esc(LABEL_DECISIONS_FILE)}</button> <span id="status"></span>${input.total > items.length ? ` <span class="muted">(the ${items.length} most suspicious of ${input.total} issues; label-issues.csv lists all)</span>` : ''}</p>
${items.length === 0 ? '<p>No issues found.</p>' : articles.join('\n')}
<script type="application/json" id="review-data">${jsonForScript(data)}</script>
<script>${script}</script>
</body>
</html>
`;
}
