// The README's speed figures come from the benchmark results kept in bench-results/: every number in a row of its
// "Speed" table must be, at the precision shown, a value recorded in the JSON file that row names.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';

const ROOT = new URL('..', import.meta.url).pathname;

test("every figure in the README's speed table is a value of the bench-results file its row names", () => {
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
  const section = /^## Speed\n([\s\S]*?)^## /m.exec(readme)?.[1];
  assert.ok(section, 'README.md has a "## Speed" section');
  const rows = section.split('\n').filter((line) => line.startsWith('|') && line.includes('bench-results/'));
  assert.ok(rows.length >= 3, `speed rows found: ${rows.length}`);
  for (const row of rows) {
    const file = /`(bench-results\/[\w.-]+\.json)`/.exec(row)?.[1];
    assert.ok(file, `${row}: names its file`);
    const values = (JSON.parse(readFileSync(join(ROOT, file), 'utf8')) as { results: { value: number }[] }).results.map((r) => r.value);
    // The figure cells: every cell but the first (what is measured) and the last (the file).
    const cells = row.split('|').slice(2, -2).join('|');
    const figures = [...cells.matchAll(/(\d+(?:\.(\d+))?)(?=\s?(?:ms|x|%))/g)];
    assert.ok(figures.length > 0, `${row}: has figures`);
    for (const [, text, decimals] of figures) {
      const places = decimals?.length ?? 0;
      assert.ok(
        values.some((value) => value.toFixed(places) === text),
        `${file} holds no value that rounds to ${text} (${row.slice(0, 60)}...)`,
      );
    }
  }
});
