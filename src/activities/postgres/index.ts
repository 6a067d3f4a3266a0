/**
 * The PostgreSQL (self-hosted Supabase) activities: migrations (L5), the deployment audit log (H4),
 * snapshots for backup (B1) and their restore for rollback (R2).
 */
import { SecretRedactor } from '../../config/credential-ref';
import { makeAppendAuditRecord } from './append-audit-record';
import { makeApplyMigrations } from './apply-migrations';
import type { ConnectionSettings, PostgresConnection } from './postgres-connection';
import { parseConnectionString } from './postgres-connection';
import { makeSnapshotActivities } from './snapshots';

export type { PostgresConnection } from './postgres-connection';
export * from './postgres-schemas';

export interface PostgresActivitiesOptions {
  /** `postgres://user:password@host:port/database?sslmode=require`; or give `connection`. */
  connectionString?: string;
  /** The connection as parts (the field names of `pg.ClientConfig`); or give `connectionString`. */
  connection?: PostgresConnection;
  /** The release's migration files (`/db/migrations`), applied in lexical order of their names. */
  migrationsDir: string;
  /** `schema.table` recording applied migrations; `internal.schema_migrations` by default. */
  migrationsTable?: string;
  /** `pg_dump` of the server's major version (or newer). */
  pgDumpPath: string;
  pgRestorePath: string;
  /** Where snapshots are written and the only place they are restored from. */
  snapshotDir: string;
  /** Schemas to dump (`pg_dump --schema`), e.g. only the application's on Supabase; all when absent. */
  dumpSchemas?: string[];
  /** Redactor shared with the worker; the password is added to it. A new one when absent. */
  redactor?: SecretRedactor;
  /** Diagnostic lines (never a credential). */
  log: (message: string) => void;
  /** Connection timeout for the driver and the tools; 10 s by default. */
  connectTimeoutMs?: number;
  /** How often a migration run waiting for another run's lock looks again; 500 ms by default. */
  lockPollMs?: number;
  /** Minimum time between progress heartbeats while dumping or restoring; 1 s by default. */
  progressIntervalMs?: number;
  /** How often a migration file that is still running heartbeats; 5 s by default. */
  migrationHeartbeatMs?: number;
  /** Grace between SIGTERM and SIGKILL when a dump or restore is cancelled; 5 s by default. */
  killGraceMs?: number;
  /** Wall clock in ms (the snapshot time and the RPO check); `Date.now` by default. */
  clock?: () => number;
}

const IDENT = /^[a-z_][a-z0-9_]*$/;

function parseTableName(name: string): { schema: string; table: string } {
  const [schema, table, extra] = name.split('.');
  if (!schema || !table || extra !== undefined || !IDENT.test(schema) || !IDENT.test(table))
    throw new Error(`migrationsTable must be schema.table in lower-case identifiers, not ${name}`);
  return { schema, table };
}

/**
 * Builds the PostgreSQL activities over one database. Migrations and snapshots open their own connection
 * and close it before returning; the audit activities share up to four connections kept open between calls
 * and closed after ten idle seconds. The password is only in the driver's config and the tools'
 * `PGPASSWORD`, and every failure message passes through the redactor.
 *
 * - `applyMigrations`: each `*.sql` file once, in order, one transaction per file, recorded with its
 *   sha256 under an advisory lock (check-then-act inside the lock; see `makeApplyMigrations`).
 * - `appendAuditRecord`: one row in the append-only `internal.audit_deploy` per idempotency key
 *   (`ON CONFLICT DO NOTHING`, the existing row's id on replay).
 * - `appendAuditRecords`: several such rows in one statement, so all or none (the release journal writes
 *   its rows this way).
 * - `takeSnapshot`: `pg_dump -Fc` to `<snapshotDir>/<database>--<key>-<hash>.dump`, named from the
 *   idempotency key (default `<workflowId>/<activityId>`). Written as `.partial`, hashed while streaming,
 *   renamed when complete; a replay that finds the complete file (size and sha256 as recorded in the
 *   `.json` beside it, `pg_restore --list` readable) returns it with `reused: true`. Heartbeats the bytes
 *   written; cancellation kills `pg_dump` and removes the partial file. Fails with `UpstreamUnavailable`
 *   (retryable: server unreachable), `Unauthorized`, `NotFound` (no such database), `OperationFailed`
 *   (other `pg_dump` failures, with its redacted stderr), `InvalidInput` (the tool cannot be started).
 * - `restoreSnapshot` (compensation of a release's database changes, R2): verifies the path is in
 *   `snapshotDir`, refuses a snapshot older than `maxAgeMs` (RPO, default 1 h) with `PolicyViolation`
 *   unless `confirmStale`, verifies the sha256 (`ContractViolation` when corrupt, nothing restored), then
 *   runs `pg_restore --clean --if-exists --single-transaction`: all or nothing, so a failure or
 *   cancellation (which kills `pg_restore`) leaves the database as it was, and running it again yields
 *   the same state (idempotent). When the database has the audit log `internal.audit_deploy`, it is left
 *   out of the restore, so a rollback never erases the record of what happened (into an empty database
 *   the snapshot's copy is restored). Objects created after the snapshot that are not in it are left in
 *   place.
 */
export function createPostgresActivities(options: PostgresActivitiesOptions) {
  if (!options.connectionString === !options.connection)
    throw new Error('createPostgresActivities needs exactly one of connectionString and connection');
  const connection = options.connection ?? parseConnectionString(options.connectionString ?? '');
  const redactor = options.redactor ?? new SecretRedactor();
  redactor.add(connection.password);
  if (options.connectionString) redactor.add(options.connectionString);
  const settings: ConnectionSettings = {
    connection,
    redactor,
    connectTimeoutMs: options.connectTimeoutMs ?? 10_000,
    applicationName: 'aceh-release',
  };
  const log = (message: string) => options.log(redactor.redact(message));
  const applyMigrations = makeApplyMigrations({
    settings,
    migrationsDir: options.migrationsDir,
    migrationsTable: parseTableName(options.migrationsTable ?? 'internal.schema_migrations'),
    lockPollMs: options.lockPollMs ?? 500,
    runningHeartbeatMs: options.migrationHeartbeatMs ?? 5000,
    log,
  });
  const { appendAuditRecord, appendAuditRecords } = makeAppendAuditRecord({ settings, log });
  const { takeSnapshot, restoreSnapshot } = makeSnapshotActivities({
    settings,
    pgDumpPath: options.pgDumpPath,
    pgRestorePath: options.pgRestorePath,
    snapshotDir: options.snapshotDir,
    dumpSchemas: options.dumpSchemas ?? [],
    progressIntervalMs: options.progressIntervalMs ?? 1000,
    killGraceMs: options.killGraceMs ?? 5000,
    clock: options.clock ?? Date.now,
    log,
  });
  return { applyMigrations, appendAuditRecord, appendAuditRecords, takeSnapshot, restoreSnapshot };
}

export type PostgresActivities = ReturnType<typeof createPostgresActivities>;
