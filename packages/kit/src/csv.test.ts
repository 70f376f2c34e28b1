import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { test } from 'node:test';
import { csvString, csvText, fromSpreadsheetSafe, readCsvRows, spreadsheetSafe } from './csv.js';

const VALUES = [
  '=HYPERLINK("http://x","y")',
  '+1+cmd|',
  '-2+3',
  '@SUM(A1)',
  '\tx',
  '\rx',
  "'=x",
  "''-y",
  "'quoted",
  '-0.5',
  '+3',
  '1e-3',
  '-',
  'cat',
  '',
  "'-1",
];

test('spreadsheetSafe quotes what a spreadsheet would run, leaves numbers and text, and is undone exactly', () => {
  assert.equal(spreadsheetSafe('=HYPERLINK("http://x","y")'), `'=HYPERLINK("http://x","y")`);
  assert.equal(spreadsheetSafe('@SUM(A1)'), "'@SUM(A1)");
  assert.equal(spreadsheetSafe('\tx'), "'\tx");
  assert.equal(spreadsheetSafe('-0.5'), '-0.5');
  assert.equal(spreadsheetSafe('cat'), 'cat');
  assert.equal(spreadsheetSafe("'=x"), "''=x");
  for (const value of VALUES) assert.equal(fromSpreadsheetSafe(spreadsheetSafe(value)), value, JSON.stringify(value));
});

test('a CSV written forSpreadsheets has no formula cell and reads back to the original values', async () => {
  const rows = VALUES.map((value, i) => ({ i, value, n: -i / 2 }));
  const text = await csvString(['i', 'value', 'n'], rows, { forSpreadsheets: true });
  const raw = (await readCsvRows(Readable.from([text]), { source: 'raw' })).rows;
  assert.deepEqual(
    raw.filter((row) => /^[=+\-@\t\r]/.test(row.value!) && Number.isNaN(Number(row.value))),
    [],
  );
  assert.equal(raw[0]!.value, `'=HYPERLINK("http://x","y")`);
  const back = (await readCsvRows(Readable.from([text]), { source: 'back', forSpreadsheets: true })).rows;
  assert.deepEqual(
    back.map((row) => row.value),
    VALUES,
  );
  assert.deepEqual(
    back.map((row) => row.n),
    rows.map((row) => String(row.n)),
  );
  // Without the option, values are written as given (data files).
  assert.equal((await readCsvRows(Readable.from([await csvString(['value'], [{ value: '=1+1' }])]), { source: 'data' })).rows[0]!.value, '=1+1');
});

test('csvText put together in parts is csvString of all the rows, header included, with no rows too', async () => {
  const rows = VALUES.map((value, i) => ({ i, value, flag: i % 2 === 0, missing: undefined }));
  const columns = ['i', 'value', 'flag', 'missing'];
  for (const options of [{}, { forSpreadsheets: true }]) {
    const parts = await csvText(columns, options);
    for (let start = 0; start < rows.length; start += 3) parts.add(rows.slice(start, start + 3));
    parts.add([]);
    assert.equal(parts.text(), await csvString(columns, rows, options));
    assert.equal((await csvText(columns, options)).text(), await csvString(columns, [], options));
  }
});
