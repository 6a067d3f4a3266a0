/**
 * Environment overrides of the configuration file, for deployments that change a setting or two without
 * editing the file (a container, a CI job).
 *
 * Scheme: `ACEH_RELEASE__<key>__<key>…=<value>`. The prefix is `ACEH_RELEASE` and two underscores; each
 * further `__` descends one level. Keys match the file's keys, ignoring case (`MONITORING__MAXERRORRATE`
 * works); environment and service names are matched against the names in the file, and a new name adds
 * an entry; list items are addressed by index (`approval__approvers__0`).
 *
 *   ACEH_RELEASE__monitoring__maxErrorRate=0.03                 → monitoring.maxErrorRate = 0.03
 *   ACEH_RELEASE__monitoring__bakeTime=15m                      → monitoring.bakeTime = "15m"
 *   ACEH_RELEASE__environments__production__strategy__steps=[5, 20, 50, 100]
 *   ACEH_RELEASE__systems__coolify__token={env: COOLIFY_TOKEN_2}
 *   ACEH_RELEASE__approval__approvers=[rizki, dewi, fajar]
 *
 * Values are coerced by the schema: if the setting accepts the text as it is (a name, a duration, a URL),
 * it stays text; otherwise the text is read as YAML, so `0.03` becomes a number, `true` a boolean,
 * `[a, b]` a list and `{env: NAME}` a mapping. An empty value removes the setting (its default applies).
 * The overridden document is then validated like the file itself, and findings name the variable.
 * Secrets cannot be passed this way: `ACEH_RELEASE__systems__coolify__token=abc` is refused as an inline
 * secret, like in the file.
 *
 * `ACEH_RELEASE_CONFIG` (one underscore) is not an override: it names the configuration file.
 */
import YAML from 'yaml';
import { z } from 'zod';
import type { IssuePath } from './config-rules';
import { PlatformConfig } from './platform-config';
import { childSchemas, closestKey, concreteSchemas, containerKind, objectKeys } from './schema-path';
import { formatPath, type ConfigIssue, type ValueSource } from './validate-platform-config';

/** Prefix of override variables. */
export const OVERRIDE_PREFIX = 'ACEH_RELEASE__';

export interface OverrideResult {
  /** A copy of the document with the overrides applied. */
  document: unknown;
  /** The overrides applied, in order: which variable set which setting. Values are not kept. */
  applied: ValueSource[];
  /** Variables that do not name a setting; they are not applied. */
  errors: ConfigIssue[];
}

type Schema = z.core.$ZodType;
type Container = Record<string, unknown> | unknown[];

function isContainer(value: unknown): value is Container {
  return value !== null && typeof value === 'object';
}

/** The value of an override as the setting wants it (see the module comment). */
function coerce(raw: string, schemas: readonly Schema[]): unknown {
  if (schemas.some((s) => z.safeParse(s, raw).success)) return raw;
  try {
    return YAML.parse(raw) as unknown;
  } catch {
    return raw; // validation reports what is wrong with it
  }
}

class OverrideError extends Error {
  constructor(
    readonly path: IssuePath,
    message: string,
  ) {
    super(message);
  }
}

function applyOne(root: Record<string, unknown>, segments: string[], raw: string): IssuePath {
  let schemas: Schema[] = concreteSchemas(PlatformConfig);
  let node: Container = root;
  const path: IssuePath = [];
  for (const [i, segment] of segments.entries()) {
    const kind = containerKind(schemas);
    let key: string | number;
    if (kind === 'object') {
      const keys = objectKeys(schemas);
      const found =
        keys.find((k) => k === segment) ?? keys.filter((k) => k.toLowerCase() === segment.toLowerCase())[0];
      if (found === undefined) {
        const guess = closestKey(segment, keys);
        throw new OverrideError(
          [...path, segment],
          `is not a setting${guess ? `; did you mean ${guess}?` : `; known here: ${keys.join(', ')}`}`,
        );
      }
      key = found;
    } else if (kind === 'record') {
      const existing: string[] = Array.isArray(node) ? [] : Object.keys(node);
      key =
        existing.find((k) => k === segment) ??
        existing.find((k) => k.toLowerCase() === segment.toLowerCase()) ??
        segment;
    } else if (kind === 'array') {
      const length = Array.isArray(node) ? node.length : 0;
      if (!/^\d+$/.test(segment) || Number(segment) > length) {
        throw new OverrideError(path, `is a list: address an item by index 0-${length}, not "${segment}"`);
      }
      key = Number(segment);
    } else {
      throw new OverrideError(path, `is a single value; it has no setting "${segment}"`);
    }
    path.push(key);
    schemas = childSchemas(schemas, key);
    const container = node as Record<string | number, unknown>;
    if (i === segments.length - 1) {
      if (raw === '') {
        if (Array.isArray(node) && typeof key === 'number') node.splice(key, 1);
        else delete container[key];
      } else {
        container[key] = coerce(raw, schemas);
      }
      return path;
    }
    let child: unknown = container[key];
    if (child === undefined || child === null) {
      child = containerKind(schemas) === 'array' ? [] : {};
      container[key] = child;
    }
    if (!isContainer(child)) {
      throw new OverrideError(path, 'holds a single value in the file; it has no settings inside');
    }
    node = child;
  }
  return path;
}

/**
 * Applies every `ACEH_RELEASE__…` variable of `env` to a copy of `document`, in the order of the variable
 * names. Never throws for a bad variable: it is reported in `errors` and skipped.
 */
export function applyEnvOverrides(
  document: unknown,
  env: Record<string, string | undefined>,
): OverrideResult {
  const variables = Object.keys(env)
    .filter((name) => name.startsWith(OVERRIDE_PREFIX) && env[name] !== undefined)
    .sort();
  if (variables.length === 0) return { document, applied: [], errors: [] };
  const errors: ConfigIssue[] = [];
  if (!isContainer(document) || Array.isArray(document)) {
    return {
      document,
      applied: [],
      errors: variables.map((variable) => ({
        path: '',
        message: 'cannot apply: the configuration is not a mapping of settings',
        source: variable,
      })),
    };
  }
  const root = structuredClone(document);
  const applied: ValueSource[] = [];
  for (const variable of variables) {
    const segments = variable.slice(OVERRIDE_PREFIX.length).split('__');
    if (segments.some((s) => s === '')) {
      errors.push({
        path: '',
        message: `is not an override: write ${OVERRIDE_PREFIX}<key>__<key>, e.g. ${OVERRIDE_PREFIX}monitoring__maxErrorRate`,
        source: variable,
      });
      continue;
    }
    try {
      applied.push({ variable, path: applyOne(root, segments, env[variable]!) });
    } catch (err) {
      if (!(err instanceof OverrideError)) throw err;
      errors.push({ path: formatPath(err.path), message: err.message, source: variable });
    }
  }
  return { document: root, applied, errors };
}
