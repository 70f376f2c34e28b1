import { readFileSync } from 'node:fs';
import yargs, { type Argv, type Options as YargsOption } from 'yargs';
import { configOptions, resolveConfig, type ResolvedConfig } from './config.js';
import type { ConfigKey } from './config-schema.js';
import { EXIT_OK, EXIT_USAGE, exitCodeOf, ImgpipeError, messageOf } from './errors.js';
import { createLogger, type Logger } from './log.js';
import { describeValue, parseFlagValue, repeatedProblem, type ValueSpec } from './values.js';

interface CliIo {
  stdin: NodeJS.ReadStream | NodeJS.ReadableStream;
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
  env: NodeJS.ProcessEnv;
  cwd: string;
}

export interface CliContext extends CliIo {
  log: Logger;
  /** The resolved configuration (flags > env > --config file > defaults). */
  settings: ResolvedConfig;
}

/**
 * A tool's own flag: a yargs option, and for typed values a `value` spec. Such a flag is read as the user's text
 * and parsed by kit's one value parser (the same as configuration keys), so errors echo what the user typed.
 */
export type ToolOption = YargsOption & { value?: ValueSpec };

export interface ToolCli {
  /** The binary's name. */
  name: string;
  summary: string;
  /** The tool package's package.json (new URL('../package.json', import.meta.url)): --version reads it. */
  packageJson: URL;
  /** Configuration keys this tool reads (each is a flag too, secrets excepted); no other key is read or validated. */
  configKeys: readonly ConfigKey[];
  /** The tool's own flags (not configuration keys). */
  options?: Record<string, ToolOption>;
  examples?: readonly [command: string, description: string][];
  /** Extra yargs set-up: positional args, checks, epilogue. */
  configure?: (argv: Argv) => Argv;
  /** Does the work; returns the exit code (0 when omitted). Load heavy modules here, not at the top. */
  // biome-ignore lint/suspicious/noConfusingVoidType: a tool's run may end without a value (exit 0) or return its exit code
  run(args: Record<string, unknown>, context: CliContext): Promise<number | void>;
}

const SHARED_OPTIONS: Record<string, YargsOption> = {
  config: { type: 'string', describe: 'YAML config file (sections project, data, aws, train); env IMGPIPE_CONFIG' },
  quiet: { type: 'boolean', alias: 'q', describe: 'Only warnings and errors on stderr' },
};

/** Read by every tool: --project-name and --debug. */
const SHARED_KEYS: readonly ConfigKey[] = ['project.name', 'project.debug_logs'];

/** The `version` field of a package.json. */
export function packageVersion(packageJson: URL): string {
  return (JSON.parse(readFileSync(packageJson, 'utf8')) as { version?: string }).version ?? 'unknown';
}

/**
 * Parse the command line, resolve config and run the tool. This is the one place that catches errors:
 * it prints one line (the stack too with --debug) and returns the exit code.
 */
export async function runCli(tool: ToolCli, argv: string[] = process.argv.slice(2), io: Partial<CliIo> = {}): Promise<number> {
  const full: CliIo = {
    stdin: io.stdin ?? process.stdin,
    stdout: io.stdout ?? process.stdout,
    stderr: io.stderr ?? process.stderr,
    env: io.env ?? process.env,
    cwd: io.cwd ?? process.cwd(),
  };
  let usageFailure: string | undefined;
  argv = joinDashValues(argv);
  const configKeys = [...new Set([...SHARED_KEYS, ...tool.configKeys])];
  let parser: Argv = yargs(argv)
    .scriptName(tool.name)
    .usage(`$0 [options]\n\n${tool.summary}`)
    .options(SHARED_OPTIONS)
    .options(configOptions(configKeys))
    .options(yargsOptions(tool.options ?? {}))
    .strict()
    .parserConfiguration({ 'camel-case-expansion': false })
    .help()
    .alias('help', 'h')
    .version(packageVersion(tool.packageJson))
    .wrap(Math.min(110, process.stderr.columns ?? 110))
    .exitProcess(false)
    .fail((message, error) => {
      usageFailure = message ?? messageOf(error);
    });
  for (const [command, description] of tool.examples ?? []) parser = parser.example(command, description);
  if (tool.configure) parser = tool.configure(parser);

  let output = '';
  const args = (await parser.parseAsync(argv, {}, (_err, _argv, text) => {
    output = text;
  })) as Record<string, unknown>;
  usageFailure ??= parseTypedFlags(tool.options ?? {}, args);
  if (usageFailure !== undefined) {
    full.stderr.write(`${tool.name}: ${usageFailure}\nRun '${tool.name} --help' for the options.\n`);
    return EXIT_USAGE;
  }
  if (output) {
    // --help (yargs prints help text through this callback rather than stdout when exitProcess is off).
    full.stdout.write(`${output}\n`);
    return EXIT_OK;
  }
  if (args.help || args.version) return EXIT_OK;

  const debug = Boolean(args.debug);
  const log = createLogger({ name: tool.name, quiet: Boolean(args.quiet), debug, stream: full.stderr });
  try {
    const settings = await resolveConfig({ flags: args, env: full.env, configPath: args.config as string | undefined, keys: configKeys });
    const code = await tool.run(args, {
      ...full,
      log: createLogger({ name: tool.name, quiet: Boolean(args.quiet), debug: debug || settings.config.project.debug_logs, stream: full.stderr }),
      settings,
    });
    return code ?? EXIT_OK;
  } catch (error) {
    reportError(error, log, debug, full.stderr);
    return exitCodeOf(error);
  }
}

/**
 * One line on stderr for an error that ended a tool; the stack only with --debug. An error that is not one of
 * ours (a raw Node or library error) says how to see where it came from.
 */
function reportError(error: unknown, log: Logger, debug: boolean, stderr: NodeJS.WritableStream): void {
  const hint = error instanceof ImgpipeError || debug ? '' : ' (unexpected; run again with --debug for the stack trace)';
  log.error(`${describeError(error)}${hint}`);
  if (debug) stderr.write(`${(error as Error)?.stack ?? String(error)}\n`);
}

/** yargs reads a lone '-' as a positional, not as an option's value: keep `--csv -` (stdin) as `--csv=-`. */
function joinDashValues(argv: string[]): string[] {
  const end = argv.indexOf('--');
  return argv.flatMap((arg, i) => {
    if (arg === '-' && i > 0 && (end < 0 || i < end) && /^--[^=]+$/.test(argv[i - 1]!) && argv[i - 1] !== '--') return [];
    if (argv[i + 1] === '-' && (end < 0 || i < end) && /^--[^=]+$/.test(arg) && arg !== '--') return [`${arg}=-`];
    return [arg];
  });
}

function describeError(error: unknown): string {
  const cause = (error as { cause?: unknown })?.cause;
  const base = messageOf(error);
  if (cause === undefined || !(error instanceof ImgpipeError)) return base;
  const causeText = messageOf(cause);
  return base.includes(causeText) ? base : `${base} (cause: ${causeText})`;
}

/** Typed flags are declared as strings to yargs (so the user's text is kept) and described with their kind. */
function yargsOptions(options: Record<string, ToolOption>): Record<string, YargsOption> {
  return Object.fromEntries(
    Object.entries(options).map(([name, { value, ...option }]) => {
      if (!value || value.type === 'bool') return [name, option];
      const describe = `${option.describe ?? ''} [${describeValue(value)}]`.trim();
      return [name, { ...option, type: 'string', describe, ...(option.default === undefined ? {} : { default: String(option.default) }) }];
    }),
  );
}

/** Parse every typed flag in place; all problems at once, one per line, or undefined. */
function parseTypedFlags(options: Record<string, ToolOption>, args: Record<string, unknown>): string | undefined {
  const problems: string[] = [];
  for (const [name, { value, type }] of Object.entries({ ...SHARED_OPTIONS, ...options } as Record<string, ToolOption>)) {
    // A text flag given twice arrives as an array, which String() would silently join with a comma.
    const given = args[name];
    if (!value && type === 'string' && Array.isArray(given) && given.length > 1) problems.push(repeatedProblem(`--${name}`, given));
    if (!value || args[name] === undefined) continue;
    const parsed = parseFlagValue(args[name], value, `--${name}`);
    if ('problem' in parsed) problems.push(parsed.problem);
    else args[name] = parsed.value;
  }
  return problems.length > 0 ? problems.join('\n') : undefined;
}

/** What a shell reports for a process killed by SIGPIPE (128 + 13), as for `yes | head`. */
const EXIT_BROKEN_PIPE = 141;

/** The entry of a bin: run and exit with the tool's code, after stdout has drained. */
export async function main(tool: ToolCli): Promise<void> {
  // The reader of our stdout went away (`download-s3 ... | head`, or the next stage failed): stop quietly, as
  // Unix tools do on SIGPIPE, instead of dying with an unhandled EPIPE stack trace.
  process.stdout.on('error', (error: NodeJS.ErrnoException) => {
    if (error.code !== 'EPIPE') throw error;
    process.exit(EXIT_BROKEN_PIPE);
  });
  // An error outside the awaited work (a stream's 'error' with no listener, a promise nobody awaited) would end the
  // process with Node's stack trace: one line instead, as for any other error.
  const debug = process.argv.includes('--debug');
  const log = createLogger({ name: tool.name, quiet: false, debug, stream: process.stderr });
  const crash = (error: unknown) => {
    reportError(error, log, debug, process.stderr);
    process.exit(exitCodeOf(error));
  };
  process.on('uncaughtException', crash);
  process.on('unhandledRejection', crash);
  const code = await runCli(tool);
  process.exitCode = code;
}
