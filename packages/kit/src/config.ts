import { readFile } from 'node:fs/promises';
import { parse as parseYaml } from 'yaml';
import type { Options as YargsOption } from 'yargs';
import { UsageError } from './errors.js';
import {
  CONFIG_SCHEMA,
  envNameOf,
  flagOf,
  specOf,
  type ConfigKey,
  type ImgpipeConfig,
  type KeySpec,
} from './config-schema.js';

export type ConfigOrigin = 'flag' | 'env' | 'file' | 'default';

export interface ResolvedConfig {
  config: ImgpipeConfig;
  /** Where each key's value came from. */
  origin: Record<ConfigKey, ConfigOrigin>;
  /** The config file as the user wrote it (secrets included), or undefined. */
  file: Record<string, unknown> | undefined;
  filePath: string | undefined;
}

export interface ConfigSources {
  /** Parsed argv from yargs (flag names as declared by `configOptions`). */
  flags?: Record<string, unknown>;
  env?: NodeJS.ProcessEnv;
  /** --config FILE; IMGPIPE_CONFIG in env is used when absent. */
  configPath?: string | undefined;
}

const KEYS = Object.keys(CONFIG_SCHEMA) as ConfigKey[];

/** yargs option declarations for the given keys: every flag is read as a string (or boolean) and validated here. */
export function configOptions(keys: readonly ConfigKey[]): Record<string, YargsOption> {
  const options: Record<string, YargsOption> = {};
  for (const key of keys) {
    const spec = specOf(key);
    const isList = spec.type.endsWith('[]');
    const shown = isList ? (spec.default as number[]).join(',') : String(spec.default);
    options[flagOf(key)] = {
      type: spec.type === 'bool' ? 'boolean' : 'string',
      describe: `${spec.doc} [${key}; default: ${spec.secret ? '(none)' : shown || '(none)'}]`,
      ...(spec.aliases ? { alias: spec.aliases } : {}),
      ...(spec.choices ? { choices: [...spec.choices] } : {}),
    };
  }
  return options;
}

/**
 * Resolve the configuration once at start-up: flags > environment > config file > defaults.
 * Every problem is reported at once, each naming its dotted key (or flag, or variable).
 */
export async function resolveConfig(sources: ConfigSources = {}): Promise<ResolvedConfig> {
  const env = sources.env ?? process.env;
  const flags = sources.flags ?? {};
  const filePath = sources.configPath || env.IMGPIPE_CONFIG || undefined;
  const problems: string[] = [];
  const file = filePath ? await readConfigFile(filePath) : undefined;
  const fileValues = file ? flattenFile(file, filePath!, problems) : new Map<ConfigKey, unknown>();

  const values = new Map<ConfigKey, unknown>();
  const origin = {} as Record<ConfigKey, ConfigOrigin>;
  for (const key of KEYS) {
    const spec = specOf(key);
    const flag = flagOf(key);
    const envName = [envNameOf(key), ...(spec.env ?? [])].find((name) => env[name] !== undefined && env[name] !== '');
    let raw: unknown;
    let label: string;
    if (flags[flag] !== undefined) {
      [raw, label, origin[key]] = [flags[flag], `--${flag}`, 'flag'];
    } else if (envName) {
      [raw, label, origin[key]] = [env[envName], envName, 'env'];
    } else if (fileValues.has(key)) {
      [raw, label, origin[key]] = [fileValues.get(key), `${filePath}: ${key}`, 'file'];
    } else {
      values.set(key, spec.default);
      origin[key] = 'default';
      continue;
    }
    const parsed = coerce(raw, spec, label);
    if (typeof parsed === 'string' && parsed.startsWith('\0')) problems.push(parsed.slice(1));
    else values.set(key, parsed);
  }
  if (problems.length > 0) {
    throw new UsageError(`invalid configuration:\n  ${problems.join('\n  ')}`);
  }
  return { config: toSections(values), origin, file, filePath };
}

async function readConfigFile(path: string): Promise<Record<string, unknown>> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    throw new UsageError(`--config ${path}: cannot read the file (${(error as NodeJS.ErrnoException).code ?? error})`, { cause: error });
  }
  let parsed: unknown;
  try {
    parsed = parseYaml(text);
  } catch (error) {
    throw new UsageError(`--config ${path}: not valid YAML: ${(error as Error).message.split('\n')[0]}`, { cause: error });
  }
  if (parsed === null || parsed === undefined) return {};
  if (typeof parsed !== 'object' || Array.isArray(parsed)) {
    throw new UsageError(`--config ${path}: expected a mapping of sections (project, data, aws, train)`);
  }
  return parsed as Record<string, unknown>;
}

function flattenFile(file: Record<string, unknown>, path: string, problems: string[]): Map<ConfigKey, unknown> {
  const values = new Map<ConfigKey, unknown>();
  const sections = new Set(KEYS.map((key) => key.split('.')[0]));
  for (const [section, body] of Object.entries(file)) {
    if (!sections.has(section)) {
      problems.push(`${path}: unknown section '${section}' (known: ${[...sections].join(', ')})`);
      continue;
    }
    if (body === null || body === undefined) continue;
    if (typeof body !== 'object' || Array.isArray(body)) {
      problems.push(`${path}: '${section}' must be a mapping of keys`);
      continue;
    }
    for (const [leaf, value] of Object.entries(body)) {
      const key = `${section}.${leaf}`;
      if (!(key in CONFIG_SCHEMA)) {
        problems.push(`${path}: unknown key '${key}'`);
        continue;
      }
      if (value !== null) values.set(key as ConfigKey, value);
    }
  }
  return values;
}

/** Returns the typed value, or a problem string prefixed with NUL. */
function coerce(raw: unknown, spec: KeySpec, label: string): unknown {
  const fail = (expected: string) => `\0expected ${label} to be ${expected}, got ${JSON.stringify(raw)}`;
  switch (spec.type) {
    case 'string': {
      if (typeof raw !== 'string' && typeof raw !== 'number') return fail('a string');
      const value = String(raw);
      if (spec.choices && !spec.choices.includes(value)) return fail(`one of ${spec.choices.join(', ')}`);
      return value;
    }
    case 'bool': {
      if (typeof raw === 'boolean') return raw;
      const text = String(raw).toLowerCase();
      if (['true', '1', 'yes', 'on'].includes(text)) return true;
      if (['false', '0', 'no', 'off'].includes(text)) return false;
      return fail('true or false');
    }
    case 'int':
    case 'number': {
      const value = toNumber(raw);
      const kind = spec.type === 'int' ? 'an integer' : 'a number';
      if (value === undefined || (spec.type === 'int' && !Number.isInteger(value))) return fail(kind + bounds(spec));
      return inBounds(value, spec) ? value : fail(kind + bounds(spec));
    }
    case 'int[]':
    case 'number[]': {
      const items = Array.isArray(raw) ? raw : typeof raw === 'number' ? [raw] : typeof raw === 'string' ? raw.split(',') : undefined;
      const kind = spec.type === 'int[]' ? 'integers' : 'numbers';
      const expected = `a comma-separated list of ${kind}${bounds(spec)}`;
      if (!items || items.length === 0) return fail(expected);
      const values = items.map(toNumber);
      const ok = values.every(
        (value) => value !== undefined && (spec.type === 'number[]' || Number.isInteger(value)) && inBounds(value, spec),
      );
      return ok ? values : fail(expected);
    }
  }
}

function toNumber(raw: unknown): number | undefined {
  if (typeof raw === 'number') return Number.isFinite(raw) ? raw : undefined;
  if (typeof raw !== 'string' || raw.trim() === '') return undefined;
  const value = Number(raw.trim());
  return Number.isFinite(value) ? value : undefined;
}

function inBounds(value: number, spec: KeySpec): boolean {
  if (spec.min !== undefined && (spec.exclusiveMin ? value <= spec.min : value < spec.min)) return false;
  return spec.max === undefined || value <= spec.max;
}

function bounds(spec: KeySpec): string {
  const low = spec.min === undefined ? '' : `${spec.exclusiveMin ? '>' : '>='} ${spec.min}`;
  const high = spec.max === undefined ? '' : `<= ${spec.max}`;
  const both = [low, high].filter(Boolean).join(' and ');
  return both ? ` (${both})` : '';
}

function toSections(values: Map<ConfigKey, unknown>): ImgpipeConfig {
  const config: Record<string, Record<string, unknown>> = {};
  for (const [key, value] of values) {
    const [section, leaf] = key.split('.') as [string, string];
    (config[section] ??= {})[leaf] = value;
  }
  return config as ImgpipeConfig;
}

/** The resolved configuration with secrets masked, for run.json and --debug output. */
export function redactConfig(config: ImgpipeConfig): ImgpipeConfig {
  const copy = structuredClone(config) as unknown as Record<string, Record<string, unknown>>;
  for (const key of KEYS) {
    const spec: KeySpec = CONFIG_SCHEMA[key];
    const [section, leaf] = key.split('.') as [string, string];
    if (spec.secret && copy[section]?.[leaf]) copy[section][leaf] = '***';
  }
  return copy as unknown as ImgpipeConfig;
}
