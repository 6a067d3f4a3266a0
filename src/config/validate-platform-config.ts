/**
 * Validates a platform configuration document in three passes and reports errors and warnings apart:
 * inline secrets (anywhere in the document), the schema (`PlatformConfig`), then the rules between fields
 * (`config-rules.ts`, only once the schema holds). Every finding names its path, e.g.
 * `environments.production.domain: must be an https URL`. Messages never repeat a configured value that
 * could be a secret. Deterministic: no I/O.
 */
import type { z } from 'zod';
import { checkPlatformRules, type IssuePath } from './config-rules';
import { findInlineSecrets, isSecretKey } from './inline-secrets';
import { PlatformConfig } from './platform-config';
import { closestKey, objectKeys, schemasAt } from './schema-path';

/** One finding about a configuration. */
export interface ConfigIssue {
  /** Dotted path of the setting, e.g. `environments.production.domain`; empty for the whole document. */
  path: string;
  message: string;
  /** The environment variable that set this value, when an override did. */
  source?: string;
}

export interface ValidationResult {
  ok: boolean;
  /** The parsed configuration, when there are no errors. */
  config?: PlatformConfig;
  errors: ConfigIssue[];
  warnings: ConfigIssue[];
}

/** Where a value came from, for messages: an environment variable that set the setting at `path`. */
export interface ValueSource {
  path: IssuePath;
  variable: string;
}

/** `['environments', 'production', 'domain']` → `environments.production.domain`; indexes as `[2]`. */
export function formatPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const key of path) {
    if (typeof key === 'number') out += `[${key}]`;
    else if (typeof key === 'string' && /^[A-Za-z_$][\w$-]*$/.test(key)) out += out ? `.${key}` : key;
    else out += `[${JSON.stringify(String(key))}]`;
  }
  return out;
}

/** One line: `path: message (from VARIABLE)`. */
export function formatIssue(issue: ConfigIssue): string {
  return `${issue.path || '(document)'}: ${issue.message}${issue.source ? ` (set by ${issue.source})` : ''}`;
}

function describeInput(input: unknown): string {
  if (input === null) return 'null';
  if (Array.isArray(input)) return 'a list';
  switch (typeof input) {
    case 'string':
      return 'text';
    case 'number':
      return 'a number';
    case 'boolean':
      return input ? 'true' : 'false';
    case 'object':
      return 'a mapping';
    default:
      return typeof input;
  }
}

const EXPECTED: Record<string, string> = {
  string: 'text',
  number: 'a number',
  int: 'a whole number',
  boolean: 'true or false',
  object: 'a mapping of settings',
  record: 'a mapping',
  array: 'a list',
};

/** Messages for the issues zod raises by itself, in the words of this file format. */
const errorMap: z.core.$ZodErrorMap = (issue) => {
  switch (issue.code) {
    case 'invalid_type':
      if (issue.input === undefined) return 'is required';
      return `must be ${EXPECTED[issue.expected] ?? issue.expected}, not ${describeInput(issue.input)}`;
    case 'invalid_value':
      return issue.values.length === 1
        ? `must be ${JSON.stringify(issue.values[0])}`
        : `must be one of ${issue.values.map((v) => JSON.stringify(v)).join(', ')}`;
    case 'too_small': {
      const min = Number(issue.minimum);
      if (issue.origin === 'array') return `must have at least ${min} item${min === 1 ? '' : 's'}`;
      if (issue.origin === 'string')
        return min === 1 ? 'must not be empty' : `must be at least ${min} characters`;
      return issue.inclusive === false ? `must be greater than ${min}` : `must be at least ${min}`;
    }
    case 'too_big': {
      const max = Number(issue.maximum);
      if (issue.origin === 'array') return `must have at most ${max} items`;
      if (issue.origin === 'string') return `must be at most ${max} characters`;
      return issue.inclusive === false ? `must be less than ${max}` : `must be at most ${max}`;
    }
    default:
      return undefined;
  }
};

interface RawFinding {
  path: IssuePath;
  message: string;
}

function flattenIssue(issue: z.core.$ZodIssue): RawFinding[] {
  const path = issue.path.map((k) => (typeof k === 'symbol' ? String(k) : k));
  if (issue.code === 'unrecognized_keys') {
    const known = objectKeys(schemasAt(PlatformConfig, path));
    return issue.keys
      .filter((key) => !isSecretKey(key))
      .map((key) => {
        const guess = closestKey(key, known);
        return {
          path: [...path, key],
          message: guess
            ? `is not a setting here; did you mean ${guess}?`
            : `is not a setting here; known: ${known.join(', ')}`,
        };
      });
  }
  if (issue.code === 'invalid_key') {
    const inner = issue.issues[0]?.message;
    return [{ path, message: `is not a valid name${inner ? `: ${inner}` : ''}` }];
  }
  return [{ path, message: issue.message }];
}

const startsWith = (path: IssuePath, prefix: IssuePath) =>
  prefix.length <= path.length && prefix.every((k, i) => String(path[i]) === String(k));

/**
 * Checks `document` (a parsed YAML/JSON value) against the schema and the rules. `ok` is true when there
 * are no errors; warnings never make it false.
 */
export function validatePlatformConfig(
  document: unknown,
  options: { sources?: readonly ValueSource[] } = {},
): ValidationResult {
  const sources = options.sources ?? [];
  const toIssue = (f: RawFinding): ConfigIssue => {
    // The most specific override that set this value or a value above it.
    const source = sources
      .filter((s) => startsWith(f.path, s.path))
      .sort((a, b) => b.path.length - a.path.length)[0];
    return { path: formatPath(f.path), message: f.message, ...(source ? { source: source.variable } : {}) };
  };

  const secrets = findInlineSecrets(document);
  const parsed = PlatformConfig.safeParse(document, { error: errorMap });
  const errors: RawFinding[] = [...secrets];
  if (!parsed.success) {
    for (const issue of parsed.error.issues.flatMap(flattenIssue)) {
      // A secret already reported at (or above) this place explains the schema's complaint.
      if (!secrets.some((s) => startsWith(issue.path, s.path))) errors.push(issue);
    }
    return { ok: false, errors: errors.map(toIssue), warnings: [] };
  }
  const rules = checkPlatformRules(parsed.data);
  errors.push(...rules.errors);
  const result: ValidationResult = {
    ok: errors.length === 0,
    errors: errors.map(toIssue),
    warnings: rules.warnings.map(toIssue),
  };
  if (result.ok) result.config = parsed.data;
  return result;
}
