#!/usr/bin/env node
// Content stamps for the Makefile: one small JSON file per stage recording what the stage's output depends on
// (the sha256 of its input files, the YAML config sections it reads, selected environment variables and its
// options). The file is rewritten only when that content changes, so its mtime moves only then, and make reruns
// a stage exactly when an input's *content* or an option changed (not when a file was merely touched or
// rewritten with the same bytes, e.g. a download that found nothing new).
//
//   node scripts/stamp.mjs STAMP [--file PATH]... [--listed CSV]... [--config FILE --sections a,b] [--env NAME]... [-- OPTION...]
//
// --listed CSV records the content of every file the CSV's local_image column names (one sha256 over their
// paths and hashes), so a stage that reads those images reruns when one changes in place under the same CSV.
// A --file that does not exist is recorded as missing (e.g. a built-in backbone name instead of a path). Prints
// "stage X: ... changed" on stderr when it rewrites the stamp; nothing otherwise. Exit 2 on bad usage.
import { createHash } from 'node:crypto';
import { createReadStream, existsSync, readFileSync, statSync } from 'node:fs';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

const args = process.argv.slice(2);
const stampPath = args.shift();
if (!stampPath || stampPath.startsWith('-')) usage('expected the stamp file as the first argument');
const files = [];
const listed = [];
const envNames = [];
let config = '';
let sections = [];
let options = [];
for (let i = 0; i < args.length; i++) {
  const arg = args[i];
  const value = () => (i + 1 < args.length ? args[++i] : usage(`${arg} needs a value`));
  if (arg === '--') {
    options = args.slice(i + 1);
    break;
  } else if (arg === '--file') files.push(value());
  else if (arg === '--listed') listed.push(value());
  else if (arg === '--env') envNames.push(value());
  else if (arg === '--config') config = value();
  else if (arg === '--sections') sections = value().split(',').filter(Boolean);
  else usage(`unknown argument '${arg}'`);
}

const stamp = {
  options,
  files: Object.fromEntries(await Promise.all(files.filter(Boolean).map(async (file) => [file, await hashPath(file)]))),
  ...(listed.length > 0 ? { listed: Object.fromEntries(await Promise.all(listed.map(async (csv) => [csv, await hashListed(csv)]))) } : {}),
  env: Object.fromEntries(envNames.map((name) => [name, process.env[name] ?? null])),
  config: config ? await configSections(config, sections) : null,
};
const text = `${JSON.stringify(stamp, null, 2)}\n`;
let old = null;
try {
  old = await readFile(stampPath, 'utf8');
} catch {}
if (old !== text) {
  await mkdir(dirname(stampPath), { recursive: true });
  const temp = join(dirname(stampPath), `.${basename(stampPath)}.tmp-${process.pid}`);
  await writeFile(temp, text);
  await rename(temp, stampPath);
  process.stderr.write(`stage ${basename(stampPath)}: ${old === null ? 'first run' : describeChange(JSON.parse(old), stamp)}\n`);
}

/** sha256 of a file; of a directory: of its files' names and hashes; 'missing' when absent. */
async function hashPath(path) {
  if (!existsSync(path)) return 'missing';
  if (statSync(path).isDirectory()) {
    const { readdir } = await import('node:fs/promises');
    const entries = (await readdir(path, { recursive: true, withFileTypes: true })).filter((e) => e.isFile());
    const parts = await Promise.all(entries.map(async (e) => `${join(e.parentPath, e.name)}:${await hashPath(join(e.parentPath, e.name))}`));
    return createHash('sha256').update(parts.sort().join('\n')).digest('hex');
  }
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk);
  return hash.digest('hex');
}

/** One sha256 over the path and content hash of every local_image a CSV names ('missing' for absent files). */
async function hashListed(csv) {
  if (!existsSync(csv)) return 'missing';
  const { readCsvRows } = await import('@imgpipe/kit');
  const { rows } = await readCsvRows(createReadStream(csv), { source: csv });
  const paths = [...new Set(rows.map((row) => row.local_image).filter(Boolean))];
  const hashes = [];
  for (let i = 0; i < paths.length; i += 16) hashes.push(...(await Promise.all(paths.slice(i, i + 16).map(async (path) => `${path}:${await hashPath(path)}`))));
  return createHash('sha256').update(hashes.join('\n')).digest('hex');
}

/** The named top-level sections of a YAML config, each as its sha256 (the whole file's when no sections named). */
async function configSections(file, names) {
  if (!existsSync(file)) usage(`--config ${file}: no such file`);
  const text = readFileSync(file, 'utf8');
  if (names.length === 0) return { file, sha256: createHash('sha256').update(text).digest('hex') };
  const { parse } = await import('yaml');
  const parsed = parse(text) ?? {};
  return { file, sections: Object.fromEntries(names.map((name) => [name, createHash('sha256').update(JSON.stringify(parsed[name] ?? null)).digest('hex')])) };
}

function describeChange(before, after) {
  const changed = [];
  if (JSON.stringify(before.options) !== JSON.stringify(after.options)) changed.push('options');
  for (const [file, hash] of Object.entries(after.files)) if (before.files?.[file] !== hash) changed.push(file);
  for (const [csv, hash] of Object.entries(after.listed ?? {})) if (before.listed?.[csv] !== hash) changed.push(`images listed in ${csv}`);
  for (const [name, value] of Object.entries(after.env)) if (before.env?.[name] !== value) changed.push(`$${name}`);
  if (JSON.stringify(before.config) !== JSON.stringify(after.config)) changed.push(`config ${after.config?.file ?? before.config?.file}`);
  return `${changed.join(', ') || 'inputs'} changed`;
}

function usage(message) {
  process.stderr.write(`stamp.mjs: ${message}\nusage: node scripts/stamp.mjs STAMP [--file PATH]... [--listed CSV]... [--config FILE --sections a,b] [--env NAME]... [-- OPTION...]\n`);
  process.exit(2);
}
