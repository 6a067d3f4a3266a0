/**
 * Reads the platform configuration: the file (YAML or JSON), then the environment overrides
 * (`ACEH_RELEASE__…`, see `config-overrides.ts`), then validation (schema, inline secrets, rules between
 * fields). The worker and the CLI call this; nothing deeper reads files or `process.env`.
 */
import fs from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';
import { applyEnvOverrides } from './config-overrides';
import type { PlatformConfig } from './platform-config';
import {
  formatIssue,
  validatePlatformConfig,
  type ConfigIssue,
  type ValidationResult,
  type ValueSource,
} from './validate-platform-config';

/** The file read when none is named and `ACEH_RELEASE_CONFIG` is not set, relative to the working directory. */
export const DEFAULT_CONFIG_FILE = 'config/aceh-commerce.yaml';
/** The variable naming the configuration file. */
export const CONFIG_FILE_VARIABLE = 'ACEH_RELEASE_CONFIG';

/** The file a process should read: the one named, else `ACEH_RELEASE_CONFIG`, else the default. */
export function configFilePath(named: string | undefined, env: Record<string, string | undefined>): string {
  return named ?? (env[CONFIG_FILE_VARIABLE] || DEFAULT_CONFIG_FILE);
}

/** The file cannot be read at all (missing, a directory, no permission). */
export class ConfigFileError extends Error {
  override name = 'ConfigFileError';
}

export type ConfigFormat = 'yaml' | 'json';

/** The format of a file: by its extension, else by its first character (`{` is JSON). */
export function detectFormat(fileName: string, text: string): ConfigFormat {
  const ext = path.extname(fileName).toLowerCase();
  if (ext === '.json') return 'json';
  if (ext === '.yaml' || ext === '.yml') return 'yaml';
  return /^\s*[{[]/.test(text) ? 'json' : 'yaml';
}

/** Parses the text of a configuration file; a syntax error becomes an issue with its line and column. */
export function parseConfigText(
  text: string,
  fileName: string,
): { document: unknown; error?: undefined } | { document?: undefined; error: ConfigIssue } {
  const format = detectFormat(fileName, text);
  if (format === 'json') {
    try {
      return { document: JSON.parse(text) as unknown };
    } catch (err) {
      return { error: { path: '', message: `is not valid JSON: ${(err as Error).message}` } };
    }
  }
  const doc = YAML.parseDocument(text, { prettyErrors: true, uniqueKeys: true });
  const first = doc.errors[0];
  if (first) {
    const where = first.linePos?.[0];
    const what = (first.message.split('\n')[0] ?? '').replace(/ at line \d+, column \d+:?$/, '');
    return {
      error: {
        path: '',
        message: `is not valid YAML${where ? ` (line ${where.line}, column ${where.col})` : ''}: ${what}`,
      },
    };
  }
  return { document: doc.toJS({ maxAliasCount: 100 }) as unknown };
}

export interface LoadOptions {
  /** Path of the file. */
  file: string;
  /** Variables to take `ACEH_RELEASE__…` overrides from; none when absent. */
  env?: Record<string, string | undefined>;
  readFile?: (file: string) => string;
}

export interface LoadResult extends ValidationResult {
  file: string;
  /** The overrides that were applied (variable names and paths, never values). */
  overrides: ValueSource[];
}

/**
 * Reads, overrides and validates. Throws `ConfigFileError` only when the file cannot be read; every other
 * problem (syntax, schema, rules, bad override variables) is an error in the result.
 */
export function loadPlatformConfig(options: LoadOptions): LoadResult {
  const readFile = options.readFile ?? ((f: string) => fs.readFileSync(f, 'utf8'));
  let text: string;
  try {
    text = readFile(options.file);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? 'error';
    const reason = code === 'ENOENT' ? 'no such file' : code === 'EISDIR' ? 'it is a directory' : code;
    throw new ConfigFileError(`cannot read configuration file ${options.file}: ${reason}`);
  }
  const parsed = parseConfigText(text, options.file);
  if (parsed.error) {
    return { file: options.file, ok: false, errors: [parsed.error], warnings: [], overrides: [] };
  }
  const overridden = applyEnvOverrides(parsed.document, options.env ?? {});
  const validated = validatePlatformConfig(overridden.document, { sources: overridden.applied });
  const errors = [...overridden.errors, ...validated.errors];
  const ok = errors.length === 0;
  return {
    file: options.file,
    ok,
    ...(ok && validated.config ? { config: validated.config } : {}),
    errors,
    warnings: validated.warnings,
    overrides: overridden.applied,
  };
}

/** The configuration is invalid; the message lists every error, one per line. */
export class PlatformConfigError extends Error {
  override name = 'PlatformConfigError';
  constructor(
    readonly file: string,
    readonly errors: readonly ConfigIssue[],
  ) {
    super(`invalid configuration ${file}:\n${errors.map((e) => `  ${formatIssue(e)}`).join('\n')}`);
  }
}

/**
 * For processes that need a configuration to run (the worker): the valid configuration and its warnings,
 * or a `PlatformConfigError` / `ConfigFileError`.
 */
export function readPlatformConfig(options: LoadOptions): {
  config: PlatformConfig;
  warnings: ConfigIssue[];
} {
  const result = loadPlatformConfig(options);
  if (!result.ok || !result.config) throw new PlatformConfigError(result.file, result.errors);
  return { config: result.config, warnings: result.warnings };
}
