/**
 * The page's script, as text (it runs in the browser, not here): keyboard and mouse decisions over the server-made
 * list, and the export of label-decisions.csv. Everything it shows comes from the JSON block as text nodes.
 */
export const REVIEW_PAGE_SCRIPT = String.raw`(() => {
  'use strict';
  const data = JSON.parse(document.getElementById('review-data').textContent);
  const items = Array.from(document.querySelectorAll('.issue'));
  const decisions = new Array(items.length).fill(null);
  let current = 0;
  const status = document.getElementById('status');
  const classKeys = data.classes.slice(0, 9);

  function describe(d) {
    if (!d) return 'undecided';
    return d.action === 'relabel' ? 'relabel to ' + data.classes[d.label] : d.action;
  }
  function render(i) {
    const d = decisions[i];
    const el = items[i];
    el.dataset.decision = d ? d.action : '';
    el.querySelector('.decision').textContent = describe(d);
  }
  function summary() {
    const n = decisions.filter(Boolean).length;
    status.textContent = n + ' of ' + items.length + ' decided';
  }
  function select(i, scroll) {
    if (items.length === 0) return;
    current = Math.max(0, Math.min(items.length - 1, i));
    items.forEach((el, n) => el.classList.toggle('current', n === current));
    if (scroll) items[current].scrollIntoView({ block: 'nearest' });
  }
  function decide(i, action, label) {
    const item = data.items[i];
    if (action === 'relabel') {
      if (label === undefined) label = item.suggested;
      if (label === undefined || label < 0 || label === item.given) return;
    }
    decisions[i] = action === 'relabel' ? { action, label } : action === 'undo' ? null : { action };
    render(i);
    summary();
    if (action !== 'undo') select(i + 1, true);
  }
  function csvField(value) {
    const text = String(value);
    return /[",\r\n]/.test(text) || /^[=+\-@]/.test(text) ? '"' + text.replace(/"/g, '""') + '"' : text;
  }
  function exportCsv() {
    const lines = [data.columns.join(',')];
    decisions.forEach((d, i) => {
      if (!d) return;
      const item = data.items[i];
      const label = d.action === 'relabel' ? data.classes[d.label] : d.action === 'keep' ? data.classes[item.given] : '';
      const row = { sha256: item.sha256, action: d.action, label, source: item.source, split: item.split, given_label: data.classes[item.given] };
      lines.push(data.columns.map((c) => csvField(row[c] === undefined ? '' : row[c])).join(','));
    });
    const blob = new Blob([lines.join('\n') + '\n'], { type: 'text/csv' });
    const link = document.createElement('a');
    link.href = URL.createObjectURL(blob);
    link.download = data.file;
    document.body.appendChild(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(link.href), 1000);
  }

  items.forEach((el, i) => {
    el.addEventListener('click', (event) => {
      const button = event.target.closest('button[data-action]');
      select(i, false);
      if (button) decide(i, button.dataset.action, button.dataset.label === undefined ? undefined : Number(button.dataset.label));
    });
  });
  document.getElementById('export').addEventListener('click', exportCsv);
  document.addEventListener('keydown', (event) => {
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    const key = event.key;
    if (key === 'j') select(current + 1, true);
    else if (key === 'k') select(current - 1, true);
    else if (key === 'c') decide(current, 'keep');
    else if (key === 'r') decide(current, 'relabel');
    else if (key === 'd') decide(current, 'drop');
    else if (key === 'u') decide(current, 'undo');
    else if (key === 'e') exportCsv();
    else if (/^[1-9]$/.test(key) && Number(key) <= classKeys.length) decide(current, 'relabel', Number(key) - 1);
    else return;
    event.preventDefault();
  });
  select(0, false);
  summary();
})();
`;
