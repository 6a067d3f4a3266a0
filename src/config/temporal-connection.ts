/**
 * Where the Temporal cluster is and how to reach it, from environment variables. The same variables the
 * Temporal CLI reads, so one shell configuration serves both. Files (certificates, keys) are read here, in
 * the process that connects; their contents never go anywhere else.
 */
import fs from 'node:fs';
import { z } from 'zod';
import type { TLSConfig } from '@temporalio/client';

/** The task queue every aceh-release worker polls. Public contract: people type it into the Temporal CLI. */
export const TASK_QUEUE = 'aceh-release';

const optionalPath = z.string().min(1).optional();

/** Environment of a process that connects to Temporal. Unknown variables are ignored. */
export const TemporalConnectionEnv = z
  .object({
    TEMPORAL_ADDRESS: z
      .string()
      .regex(/^[^\s:]+:\d{1,5}$|^\[[0-9a-fA-F:]+\]:\d{1,5}$/, 'must be host:port, for example 127.0.0.1:7233')
      .optional(),
    TEMPORAL_NAMESPACE: z.string().min(1).default('default'),
    TEMPORAL_API_KEY: z.string().min(1).optional(),
    TEMPORAL_TLS: z.stringbool().optional(),
    TEMPORAL_TLS_CERT: optionalPath,
    TEMPORAL_TLS_KEY: optionalPath,
    TEMPORAL_TLS_CA: optionalPath,
    TEMPORAL_TLS_SERVER_NAME: z.string().min(1).optional(),
  })
  .refine((env) => !!env.TEMPORAL_TLS_CERT === !!env.TEMPORAL_TLS_KEY, {
    message:
      'TEMPORAL_TLS_CERT and TEMPORAL_TLS_KEY go together: mTLS needs both the certificate and its key',
    path: ['TEMPORAL_TLS_CERT'],
  });
export type TemporalConnectionEnv = z.infer<typeof TemporalConnectionEnv>;

/** Options shared by `Connection.connect` (client) and `NativeConnection.connect` (worker). */
export interface TemporalConnectionSettings {
  /** Absent means: no cluster configured, use the embedded dev server. */
  address: string | undefined;
  namespace: string;
  tls: TLSConfig | undefined;
  apiKey: string | undefined;
}

export class ConnectionConfigError extends Error {
  override name = 'ConnectionConfigError';
}

/**
 * Reads the connection settings from `env`. TLS is on when asked for (`TEMPORAL_TLS=true`), when any TLS
 * file is given, or with an API key (Temporal Cloud requires TLS with API keys).
 */
export function readTemporalConnection(
  env: Record<string, string | undefined>,
  readFile: (path: string) => Buffer = (p) => fs.readFileSync(p),
): TemporalConnectionSettings {
  const parsed = TemporalConnectionEnv.safeParse(env);
  if (!parsed.success) {
    throw new ConnectionConfigError(
      `invalid Temporal connection settings:\n${z.prettifyError(parsed.error)}`,
    );
  }
  const e = parsed.data;
  const load = (variable: string, path: string | undefined): Buffer | undefined => {
    if (!path) return undefined;
    try {
      return readFile(path);
    } catch (err) {
      throw new ConnectionConfigError(
        `${variable}: cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? 'error'}`,
      );
    }
  };
  const crt = load('TEMPORAL_TLS_CERT', e.TEMPORAL_TLS_CERT);
  const key = load('TEMPORAL_TLS_KEY', e.TEMPORAL_TLS_KEY);
  const ca = load('TEMPORAL_TLS_CA', e.TEMPORAL_TLS_CA);
  const wantsTls = e.TEMPORAL_TLS ?? (!!crt || !!ca || !!e.TEMPORAL_TLS_SERVER_NAME || !!e.TEMPORAL_API_KEY);
  if (e.TEMPORAL_TLS === false && (crt || ca)) {
    throw new ConnectionConfigError(
      'TEMPORAL_TLS=false contradicts the TLS files given in TEMPORAL_TLS_CERT/TEMPORAL_TLS_CA',
    );
  }
  const tls: TLSConfig | undefined = wantsTls
    ? {
        ...(e.TEMPORAL_TLS_SERVER_NAME ? { serverNameOverride: e.TEMPORAL_TLS_SERVER_NAME } : {}),
        ...(ca ? { serverRootCACertificate: ca } : {}),
        ...(crt && key ? { clientCertPair: { crt, key } } : {}),
      }
    : undefined;
  return { address: e.TEMPORAL_ADDRESS, namespace: e.TEMPORAL_NAMESPACE, tls, apiKey: e.TEMPORAL_API_KEY };
}

/** A one-line description for logs: never includes key material or the API key. */
export function describeConnection(s: TemporalConnectionSettings): string {
  const security = s.tls ? (s.tls.clientCertPair ? 'mTLS' : 'TLS') : 'plaintext';
  return `${s.address ?? 'embedded dev server'} namespace=${s.namespace} ${security}${s.apiKey ? ' api-key' : ''}`;
}
