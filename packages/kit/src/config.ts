import { readFile } from 'node:fs/promises';
import type { Options as YargsOption } from 'yargs';
import { UsageError } from './errors.js';
import { parseFlagValue, parseValue } from './values.js';
import { CONFIG_SCHEMA, envNameOf, flagOf, specOf, type ConfigKey, type ImgpipeConfig } from './config-schema.js';

export type ConfigOrigin = 'flag' | 'env' | 'file' | 'default';

export interface ResolvedConfig {
  config: ImgpipeConfig;
  /** Where each key's value came from. */
  origin: Record<ConfigKey, ConfigOrigin>;
  /** The config file as the user wrote it (secrets included), or undefined. */
  file: Record<string, unknown> | undefined;
  filePath: string | undefined;
}

interface ConfigSources {
  /** Parsed argv from yargs (flag names as declared by `configOptions`). */
  flags?: Record<string, unknown>;
  env?: NodeJS.ProcessEnv;
  /** --config FILE; IMGPIPE_CONFIG in env is used when absent. */
  configPath?: string | undefined;
  /**
   * The keys the tool reads (default: all). Only these are taken from flags, environment and file and validated;
   * the others keep their defaults, so a variable meant for one tool never stops another.
   */
  keys?: readonly ConfigKey[];
}

const KEYS = Object.keys(CONFIG_SCHEMA) as ConfigKey[];

/** yargs option declarations for the given keys: every flag is read as a string (or boolean) and validated here. */
export function configOptions(keys: readonly ConfigKey[]): Record<string, YargsOption> {
  const options: Record<string, YargsOption> = {};
  for (const key of keys) {
    const spec = specOf(key);
    if (spec.secret) continue;
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
  const reads = new Set(sources.keys ?? KEYS);
  for (const key of KEYS) {
    const spec = specOf(key);
    const flag = flagOf(key);
    if (!reads.has(key)) {
      values.set(key, spec.default);
      origin[key] = 'default';
      continue;
    }
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
    const parsed = origin[key] === 'flag' ? parseFlagValue(raw, spec, label) : parseValue(raw, spec, label);
    if ('problem' in parsed) problems.push(parsed.problem);
    else values.set(key, parsed.value);
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
  // yaml loads here, when a config file is read, not with kit: most runs have none, and --help never reads one.
  const { parse: parseYaml } = await import('yaml');
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

function toSections(values: Map<ConfigKey, unknown>): ImgpipeConfig {
  const config: Record<string, Record<string, unknown>> = {};
  for (const [key, value] of values) {
    const [section, leaf] = key.split('.') as [string, string];
    config[section] ??= {};
    config[section][leaf] = value;
  }
  return config as ImgpipeConfig;
}
