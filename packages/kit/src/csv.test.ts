import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { test } from 'node:test';
import { csvString, csvText, fromSpreadsheetSafe, incompleteCsvTrailer, readCsv, readCsvRows, readCsvText, spreadsheetSafe } from './csv.js';

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

test('csvText put together in parts is the CSV of all the rows at once, and reads back to them', async () => {
  const rows = VALUES.map((value, i) => ({ i, value, flag: i % 2 === 0, missing: undefined }));
  const columns = ['i', 'value', 'flag', 'missing'];
  for (const options of [{}, { forSpreadsheets: true }]) {
    const parts = await csvText(columns, options);
    for (let start = 0; start < rows.length; start += 3) parts.add(rows.slice(start, start + 3));
    parts.add([]);
    const whole = await csvString(columns, rows, options);
    assert.equal(parts.text(), whole);
    const back = (await readCsvRows(Readable.from([whole]), { source: 'back', ...options })).rows;
    assert.deepEqual(
      back,
      rows.map((row) => ({ i: String(row.i), value: row.value, flag: String(row.flag), missing: '' })),
    );
    assert.equal((await csvText(columns, options)).text(), 'i,value,flag,missing\n');
  }
});

test('readCsvText reads what readCsv reads from the same text: the same columns, records and errors', async () => {
  const outcome = async (read: () => Promise<{ columns: string[]; records: AsyncIterable<unknown> }>) => {
    try {
      const { columns, records } = await read();
      const all: unknown[] = [];
      for await (const record of records) all.push(record);
      return { columns, all };
    } catch (error) {
      return { error: `${(error as Error).constructor.name}: ${(error as Error).message}` };
    }
  };
  const texts = [
    '\ufeffa,b,c\n1,2,3\n\n"x, ""y""",z,"multi\nline"\n4,5\n6,7,8,9\n',
    'a,b\r\n1,2\r\n',
    '',
    'a,a,b\n1,2,3\n',
    'b,c\n1,2\n',
    'a,b,c\n1,"2,3\n',
    `a,b,c\n1,2,3\n${incompleteCsvTrailer('download-s3 stopped: 3 failures')}`,
  ];
  for (const text of texts) {
    const options = { source: 'images.csv', required: ['a'] };
    const expected = await outcome(() => readCsv(Readable.from([Buffer.from(text)]), options));
    assert.deepEqual(await outcome(() => readCsvText(Buffer.from(text), options)), expected, JSON.stringify(text));
    assert.deepEqual(await outcome(() => readCsvText(text, options)), expected, JSON.stringify(text));
  }
});
