/**
 * Credentials by reference. Configuration never holds a secret, only where to find it: an environment
 * variable or a file (a mounted secret). References are resolved in the worker, at the moment an activity
 * factory is built; the values never enter workflow inputs, results, errors or logs.
 */
import fs from 'node:fs';
import { z } from 'zod';

export const CredentialRef = z.union([
  z
    .object({
      env: z
        .string()
        .regex(/^[A-Z_][A-Z0-9_]*$/, 'must be an environment variable name such as COOLIFY_TOKEN'),
    })
    .strict(),
  z.object({ file: z.string().min(1, 'must be a file path') }).strict(),
]);
export type CredentialRef = z.infer<typeof CredentialRef>;

export function describeCredentialRef(ref: CredentialRef): string {
  return 'env' in ref ? `environment variable ${ref.env}` : `file ${ref.file}`;
}

export class CredentialError extends Error {
  override name = 'CredentialError';
}

export interface CredentialSources {
  env: Record<string, string | undefined>;
  readFile?: (path: string) => string;
}

/** Resolves a reference to its secret value; the error names the reference, never a value. */
export function resolveCredential(ref: CredentialRef, sources: CredentialSources): string {
  if ('env' in ref) {
    const value = sources.env[ref.env];
    if (!value) throw new CredentialError(`credential ${describeCredentialRef(ref)} is not set`);
    return value;
  }
  const readFile = sources.readFile ?? ((p: string) => fs.readFileSync(p, 'utf8'));
  let value: string;
  try {
    value = readFile(ref.file).trim();
  } catch (err) {
    throw new CredentialError(
      `credential ${describeCredentialRef(ref)} cannot be read (${(err as NodeJS.ErrnoException).code ?? 'error'})`,
    );
  }
  if (!value) throw new CredentialError(`credential ${describeCredentialRef(ref)} is empty`);
  return value;
}

/**
 * Replaces every known secret in a text with `[redacted]`. Activities pass their log lines and error
 * messages through one of these, as a last line of defence behind not putting secrets there at all.
 */
export class SecretRedactor {
  private readonly secrets = new Set<string>();

  add(secret: string): string {
    if (secret.length >= 4) this.secrets.add(secret);
    return secret;
  }

  redact(text: string): string {
    let out = text;
    for (const secret of this.secrets) out = out.split(secret).join('[redacted]');
    return out;
  }
}
