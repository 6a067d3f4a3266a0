/**
 * Walks a zod schema along a path of keys, the way a value would be walked: through objects, records,
 * arrays, unions, and the wrappers (optional, default, transform pipes) in between. Used to direct the
 * coercion of environment overrides and to suggest the setting a misspelt key meant. Deterministic.
 */
import type { z } from 'zod';

type Schema = z.core.$ZodType;

/** The schemas a value at this place is checked against, wrappers removed and unions expanded. */
export function concreteSchemas(schema: Schema): Schema[] {
  const def = (schema as z.core.$ZodTypes)._zod.def;
  switch (def.type) {
    case 'optional':
    case 'nullable':
    case 'default':
    case 'prefault':
    case 'nonoptional':
    case 'catch':
    case 'readonly':
      return concreteSchemas(def.innerType);
    case 'pipe':
      // A transform's input side is the shape written in the file.
      return concreteSchemas(def.in);
    case 'lazy':
      return concreteSchemas(def.getter());
    case 'union':
      return def.options.flatMap(concreteSchemas);
    default:
      return [schema];
  }
}

export type ContainerKind = 'object' | 'record' | 'array';

/** What kind of container these schemas describe, if any (objects win over records over arrays). */
export function containerKind(schemas: readonly Schema[]): ContainerKind | undefined {
  const types = new Set(schemas.map((s) => (s as z.core.$ZodTypes)._zod.def.type));
  if (types.has('object')) return 'object';
  if (types.has('record')) return 'record';
  if (types.has('array')) return 'array';
  return undefined;
}

/** The keys the object schemas among `schemas` know. */
export function objectKeys(schemas: readonly Schema[]): string[] {
  const keys = new Set<string>();
  for (const s of schemas) {
    const def = (s as z.core.$ZodTypes)._zod.def;
    if (def.type === 'object') for (const k of Object.keys(def.shape)) keys.add(k);
  }
  return [...keys];
}

/** The concrete schemas of the value under `key` in a value checked by `schemas`. */
export function childSchemas(schemas: readonly Schema[], key: string | number): Schema[] {
  const out: Schema[] = [];
  for (const s of schemas) {
    const def = (s as z.core.$ZodTypes)._zod.def;
    if (def.type === 'object') {
      const child = def.shape[String(key)];
      if (child) out.push(...concreteSchemas(child));
    } else if (def.type === 'record') {
      out.push(...concreteSchemas(def.valueType));
    } else if (def.type === 'array' && typeof key === 'number') {
      out.push(...concreteSchemas(def.element));
    }
  }
  return out;
}

/** The concrete schemas at `path` below `root`; empty when the path leaves the schema. */
export function schemasAt(root: Schema, path: readonly (string | number)[]): Schema[] {
  let schemas = concreteSchemas(root);
  for (const key of path) {
    schemas = childSchemas(schemas, key);
    if (schemas.length === 0) break;
  }
  return schemas;
}

/** Edit distance, for "did you mean" suggestions. */
function distance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let diagonal = row[0]!;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const above = row[j]!;
      row[j] = Math.min(row[j]! + 1, row[j - 1]! + 1, diagonal + (a[i - 1] === b[j - 1] ? 0 : 1));
      diagonal = above;
    }
  }
  return row[b.length]!;
}

/** The candidate closest to `word` (ignoring case), when it is close enough to be a likely typo. */
export function closestKey(word: string, candidates: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const c of candidates) {
    const d = distance(word.toLowerCase(), c.toLowerCase());
    if (d < bestDistance) {
      best = c;
      bestDistance = d;
    }
  }
  return bestDistance <= Math.max(2, Math.floor(word.length / 3)) ? best : undefined;
}
