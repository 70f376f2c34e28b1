#!/usr/bin/env node
// Content stamps for the Makefile: one small JSON file per stage recording what the stage's output depends on
// (the sha256 of its input files, the settings it reads, selected environment variables and its options). The
// file is rewritten only when that content changes, so its mtime moves only then, and make reruns a stage exactly
// when an input's *content* or an option changed (not when a file was merely touched or rewritten with the same
// bytes, e.g. a download that found nothing new).
//
//   node scripts/stamp.mjs STAMP [--file PATH]... [--listed CSV]... [--settings SECTIONS] [--config FILE] [--backbone] [--env NAME]... [-- OPTION...]
//
// --listed CSV records the content of every file the CSV's local_image column names (one sha256 over their
// paths and hashes), so a stage that reads those images reruns when one changes in place under the same CSV.
// --settings project,train records every key of those config sections as the stages resolve them (kit's
// resolveConfig: environment IMGPIPE_<SECTION>_<KEY> and its standard variables > the config file, --config FILE
// or $IMGPIPE_CONFIG > defaults; flags are the OPTIONs, recorded as given); secrets as their sha256. A settings
// error is recorded too, and the stage then reports it. --backbone records the content of the backbone train
// resolves (a --backbone among the OPTIONs, else train.backbone): a local .onnx, a model.json with its weight
// files, or a directory; a built-in name or URL as given. A --file that does not exist is recorded as missing.
// Prints "stage X: ... changed" on stderr when it rewrites the stamp; nothing otherwise. Exit 2 on bad usage.
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
const sections = [];
let config = '';
let backbone = false;
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
  else if (arg === '--settings') sections.push(...value().split(',').filter(Boolean));
  else if (arg === '--backbone') backbone = true;
  else usage(`unknown argument '${arg}'`);
}

const settings = sections.length > 0 || backbone ? await resolveSettings(sections, config || process.env.IMGPIPE_CONFIG || '', backbone) : undefined;
const stamp = {
  options,
  files: Object.fromEntries(await Promise.all(files.filter(Boolean).map(async (file) => [file, await hashPath(file)]))),
  ...(listed.length > 0 ? { listed: Object.fromEntries(await Promise.all(listed.map(async (csv) => [csv, await hashListed(csv)]))) } : {}),
  env: Object.fromEntries(envNames.map((name) => [name, process.env[name] ?? null])),
  ...(settings ? { settings: settings.recorded } : {}),
  ...(backbone ? { backbone: await hashBackbone(backboneSpec(options, settings.values)) } : {}),
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
  for (let i = 0; i < paths.length; i += 16)
    hashes.push(...(await Promise.all(paths.slice(i, i + 16).map(async (path) => `${path}:${await hashPath(path)}`))));
  return createHash('sha256').update(hashes.join('\n')).digest('hex');
}

/**
 * Every key of the named sections as the stages resolve it without flags (kit's resolveConfig), each value as is
 * (secrets as their sha256); a configuration the stages refuse is recorded as its message.
 */
async function resolveSettings(names, configPath, withBackbone) {
  const { CONFIG_SCHEMA, resolveConfig } = await import('@imgpipe/kit');
  const keys = Object.keys(CONFIG_SCHEMA).filter((key) => names.includes(key.split('.')[0]) || (withBackbone && key === 'train.backbone'));
  const recorded = {}; // the values, not the file's name: a config moved or renamed with the same settings is no change
  const values = {};
  try {
    const { config } = await resolveConfig({ env: process.env, configPath: configPath || undefined, keys });
    for (const key of keys) {
      const [section, leaf] = key.split('.');
      const value = config[section][leaf];
      values[key] = value;
      recorded[key] = CONFIG_SCHEMA[key].secret ? createHash('sha256').update(JSON.stringify(value)).digest('hex') : value;
    }
  } catch (error) {
    recorded.error = error.message;
  }
  return { recorded, values };
}

/** The backbone train resolves: the last --backbone among the options, else the train.backbone setting. */
function backboneSpec(opts, values) {
  let spec = values['train.backbone'] ?? null;
  for (let i = 0; i < opts.length; i++) {
    if (opts[i] === '--backbone' && i + 1 < opts.length) spec = opts[i + 1];
    else if (opts[i].startsWith('--backbone=')) spec = opts[i].slice('--backbone='.length);
  }
  return spec;
}

/** A local backbone's content: the file, a model.json and the weight files it lists, or a directory's files. */
async function hashBackbone(spec) {
  if (!spec || !existsSync(spec)) return { spec, sha256: null };
  if (statSync(spec).isDirectory() || !spec.endsWith('.json')) return { spec, sha256: await hashPath(spec) };
  let weights = [];
  try {
    const json = JSON.parse(readFileSync(spec, 'utf8'));
    weights = (json.weightsManifest ?? []).flatMap((group) => group?.paths ?? []).map((path) => join(dirname(spec), path));
  } catch {}
  const parts = [];
  for (const file of [spec, ...weights]) parts.push(`${file}:${await hashPath(file)}`);
  return { spec, sha256: createHash('sha256').update(parts.join('\n')).digest('hex') };
}

function describeChange(before, after) {
  const changed = [];
  if (JSON.stringify(before.options) !== JSON.stringify(after.options)) changed.push('options');
  for (const [file, hash] of Object.entries(after.files)) if (before.files?.[file] !== hash) changed.push(file);
  for (const [csv, hash] of Object.entries(after.listed ?? {})) if (before.listed?.[csv] !== hash) changed.push(`images listed in ${csv}`);
  for (const [name, value] of Object.entries(after.env)) if (before.env?.[name] !== value) changed.push(`$${name}`);
  if (before.settings?.error || after.settings?.error) {
    if (before.settings?.error !== after.settings?.error) changed.push(after.settings?.error ? 'settings (now invalid)' : 'settings (now valid)');
  } else {
    const keys = new Set([...Object.keys(before.settings ?? {}), ...Object.keys(after.settings ?? {})]);
    for (const key of keys) if (JSON.stringify(before.settings?.[key]) !== JSON.stringify(after.settings?.[key])) changed.push(key);
  }
  if (JSON.stringify(before.backbone) !== JSON.stringify(after.backbone)) changed.push(`backbone ${after.backbone?.spec ?? before.backbone?.spec}`);
  return `${changed.join(', ') || 'inputs'} changed`;
}

function usage(message) {
  process.stderr.write(
    `stamp.mjs: ${message}\nusage: node scripts/stamp.mjs STAMP [--file PATH]... [--listed CSV]... [--settings SECTIONS] [--config FILE] [--backbone] [--env NAME]... [-- OPTION...]\n`,
  );
  process.exit(2);
}
