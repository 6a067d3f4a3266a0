/**
 * How the PostgreSQL activities reach the database, and the environment for the `pg_dump` / `pg_restore`
 * children, which receive the password in `PGPASSWORD` and never on their command line.
 *
 * Migrations and snapshots open one short-lived `pg.Client` per activity call. The audit, which a release
 * calls a few dozen times within minutes, keeps up to four connections open between calls
 * ({@link KeptConnections}): connecting and authenticating cost more than its insert. Those close after ten
 * idle seconds, so an idle worker holds no connection, and one that saw any error is dropped, never reused.
 */
import { CancelledFailure } from '@temporalio/common';
import pg from 'pg';
import type { SecretRedactor } from '../../config/credential-ref';
import { classifyPostgresError } from './classify-postgres-failure';

/** The parts of a connection; field names follow `pg.ClientConfig` so a pool config can be passed as is. */
export interface PostgresConnection {
  host: string;
  port: number;
  database: string;
  user: string;
  /** Already resolved by the worker (see CredentialRef); never logged, never in argv. */
  password: string;
  /** `disable` (default), `require` (TLS, any certificate) or `verify-full` (TLS, verified). */
  sslMode?: 'disable' | 'require' | 'verify-full';
}

/**
 * Parses `postgres://user:password@host:port/database?sslmode=require`. Throws a plain Error (a worker
 * configuration bug) whose message never contains the password.
 */
export function parseConnectionString(connectionString: string): PostgresConnection {
  let url: URL;
  try {
    url = new URL(connectionString);
  } catch {
    throw new Error('the PostgreSQL connection string is not a valid URL (postgres://user:pw@host:port/db)');
  }
  if (url.protocol !== 'postgres:' && url.protocol !== 'postgresql:')
    throw new Error(`the PostgreSQL connection string must start with postgres://, not ${url.protocol}//`);
  const database = decodeURIComponent(url.pathname.replace(/^\//, ''));
  const user = decodeURIComponent(url.username);
  if (!url.hostname || !database || !user)
    throw new Error('the PostgreSQL connection string must name a user, a host and a database');
  const sslParam = url.searchParams.get('sslmode') ?? 'disable';
  const sslMode =
    sslParam === 'verify-full' || sslParam === 'verify-ca'
      ? 'verify-full'
      : sslParam === 'require'
        ? 'require'
        : 'disable';
  return {
    host: url.hostname.replace(/^\[(.*)\]$/, '$1'),
    port: url.port ? Number(url.port) : 5432,
    database,
    user,
    password: decodeURIComponent(url.password),
    sslMode,
  };
}

/** Where the activities connect, and how long they wait for a connection. */
export interface ConnectionSettings {
  connection: PostgresConnection;
  redactor: SecretRedactor;
  connectTimeoutMs: number;
  applicationName: string;
}

/** A connected client that must be closed with `close()`; `pid` is its server backend. */
export interface OpenConnection {
  client: pg.Client;
  pid: number;
  close(): Promise<void>;
}

function clientConfig(settings: ConnectionSettings): pg.ClientConfig {
  const c = settings.connection;
  return {
    host: c.host,
    port: c.port,
    database: c.database,
    user: c.user,
    password: c.password,
    ssl: c.sslMode === 'require' ? { rejectUnauthorized: false } : c.sslMode === 'verify-full' ? true : false,
    connectionTimeoutMillis: settings.connectTimeoutMs,
    application_name: settings.applicationName,
  };
}

/** Opens one connection; a failure to connect is classified (UpstreamUnavailable, Unauthorized, NotFound). */
export async function openConnection(
  settings: ConnectionSettings,
  operation: string,
): Promise<OpenConnection> {
  const client = new pg.Client(clientConfig(settings));
  // A connection that breaks while idle emits 'error'; without a listener that would crash the worker.
  // The next query on it fails and is classified there.
  client.on('error', () => undefined);
  try {
    await client.connect();
    const res = await client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid');
    const pid = res.rows[0]?.pid ?? 0;
    let closed = false;
    return {
      client,
      pid,
      close: async () => {
        if (closed) return;
        closed = true;
        await client.end().catch(() => undefined);
      },
    };
  } catch (err) {
    await client.end().catch(() => undefined);
    throw classifyPostgresError(err, { operation, redactor: settings.redactor });
  }
}

/** How many audit connections are kept, and how long one may sit idle before it is closed. */
const KEPT_MAX = 4;
const KEPT_IDLE_MS = 10_000;

/**
 * Up to four connections kept open between activity calls, each closed after ten idle seconds. The pool is
 * made on first use; a connection that broke while idle is dropped by the pool, and the caller drops one
 * that saw an error (`client.release(true)`), so the next call connects afresh. A call that finds all four
 * in use waits for one, at most the connect timeout, then fails as the server being unreachable would.
 */
export class KeptConnections {
  private pool: pg.Pool | undefined;

  constructor(private readonly settings: ConnectionSettings) {}

  /** A connection to give back with `release(broken)`; a failure to connect is classified. */
  async acquire(operation: string): Promise<pg.PoolClient> {
    if (!this.pool) {
      this.pool = new pg.Pool({
        ...clientConfig(this.settings),
        max: KEPT_MAX,
        idleTimeoutMillis: KEPT_IDLE_MS,
        // Idle connections never keep the worker's process alive.
        allowExitOnIdle: true,
      });
      // An idle connection that breaks emits 'error' on the pool, which drops it; without a listener that
      // would crash the worker.
      this.pool.on('error', () => undefined);
    }
    try {
      return await this.pool.connect();
    } catch (err) {
      throw classifyPostgresError(err, { operation, redactor: this.settings.redactor });
    }
  }
}

/**
 * Asks the server to cancel whatever `pid` is running (a second, short connection: the running query's own
 * connection is busy). Best effort: if this fails the caller's connection is closed anyway.
 */
export async function cancelBackend(settings: ConnectionSettings, pid: number): Promise<void> {
  const client = new pg.Client(clientConfig(settings));
  client.on('error', () => undefined);
  try {
    await client.connect();
    await client.query('SELECT pg_cancel_backend($1)', [pid]);
  } catch {
    // best effort
  } finally {
    await client.end().catch(() => undefined);
  }
}

/** Throws the activity's cancellation if it was requested. */
export function throwIfCancelled(signal: AbortSignal): void {
  if (!signal.aborted) return;
  const reason: unknown = signal.reason;
  throw reason instanceof Error ? reason : new CancelledFailure('the activity was cancelled');
}

/**
 * The environment of a `pg_dump` / `pg_restore` child: the worker's environment without any ambient `PG*`
 * variable (so nothing but our configuration decides where it connects), plus the password and settings.
 */
export function toolEnvironment(settings: ConnectionSettings, tool: string): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('PG')) env[k] = v;
  const c = settings.connection;
  env['PGPASSWORD'] = c.password;
  env['PGCONNECT_TIMEOUT'] = String(Math.max(1, Math.ceil(settings.connectTimeoutMs / 1000)));
  env['PGSSLMODE'] = c.sslMode ?? 'disable';
  env['PGAPPNAME'] = `${settings.applicationName}:${tool}`;
  return env;
}

/** The non-secret connection arguments of `pg_dump` / `pg_restore`. */
export function toolConnectionArgs(connection: PostgresConnection): string[] {
  return [
    `--host=${connection.host}`,
    `--port=${connection.port}`,
    `--username=${connection.user}`,
    `--dbname=${connection.database}`,
    '--no-password',
  ];
}

/** Quotes an SQL identifier (`"name"`, doubling inner quotes). */
export function quoteIdent(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

/**
 * Creates a schema unless it exists. Looks first, so a role without CREATE on the database works once the
 * schema is there, and tolerates a concurrent creator (two activities racing on an empty database).
 */
export async function ensureSchema(client: pg.ClientBase, schema: string): Promise<void> {
  const exists = await client.query('SELECT 1 FROM pg_namespace WHERE nspname = $1', [schema]);
  if (exists.rowCount) return;
  try {
    await client.query(`CREATE SCHEMA IF NOT EXISTS ${quoteIdent(schema)}`);
  } catch (err) {
    // unique_violation / duplicate_schema: someone else created it between our look and our create.
    const code = (err as { code?: string }).code;
    if (code !== '23505' && code !== '42P06') throw err;
  }
}
