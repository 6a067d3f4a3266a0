/**
 * `applyMigrations` (L5): applies the release's `*.sql` migration files, each exactly once, in lexical
 * order, each in its own transaction, and records every applied file (name, sha256, when, by which
 * workflow) in a migrations table.
 */
import { Context } from '@temporalio/activity';
import crypto from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { FailureType, failure } from '../../errors';
import { cancellationSignal, heartbeat, sleepCancellable } from '../activity-support';
import { classifyPostgresError, classifySqlState } from './classify-postgres-failure';
import type { ConnectionSettings, OpenConnection } from './postgres-connection';
import {
  cancelBackend,
  ensureSchema,
  openConnection,
  quoteIdent,
  throwIfCancelled,
} from './postgres-connection';
import type { ApplyMigrationsProgress, ApplyMigrationsResult } from './postgres-schemas';
import { ApplyMigrationsInput } from './postgres-schemas';
import { parseActivityInput as parseInput } from '../activity-support';

export interface MigrationsDependencies {
  settings: ConnectionSettings;
  migrationsDir: string;
  /** `schema.table` of the record of applied files. */
  migrationsTable: { schema: string; table: string };
  /** How often a run that waits for another run's lock looks again. */
  lockPollMs: number;
  /**
   * How often a file that is still running heartbeats, so that a long statement (an index on a large table)
   * neither trips the heartbeat timeout nor keeps a cancellation from reaching it.
   */
  runningHeartbeatMs: number;
  log: (message: string) => void;
}

interface MigrationFile {
  name: string;
  sql: string;
  checksum: string;
}

async function readMigrations(dir: string): Promise<MigrationFile[]> {
  let names: string[];
  try {
    names = (await fs.readdir(dir, { withFileTypes: true }))
      .filter((e) => (e.isFile() || e.isSymbolicLink()) && e.name.endsWith('.sql'))
      .map((e) => e.name);
  } catch (err) {
    throw failure(
      FailureType.InvalidInput,
      `the migrations directory ${dir} cannot be read (${(err as NodeJS.ErrnoException).code ?? 'error'}); check the worker's migrationsDir`,
      { details: { migrationsDir: dir } },
    );
  }
  // Lexical order by code unit, not locale: the same on every machine.
  names.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  return Promise.all(
    names.map(async (name) => {
      const bytes = await fs.readFile(path.join(dir, name));
      return {
        name,
        sql: bytes.toString('utf8'),
        checksum: crypto.createHash('sha256').update(bytes).digest('hex'),
      };
    }),
  );
}

/** A stable 64-bit advisory lock key per migrations table. */
function lockKey(table: string): string {
  const digest = crypto.createHash('sha256').update(`aceh-release:migrations:${table}`).digest();
  return digest.readBigInt64BE(0).toString();
}

function workflowId(): string {
  const info = Context.current().info;
  return info.workflowExecution?.workflowId ?? `activity:${info.activityId}`;
}

/** 1-based line of a 1-based character position in the file, for the operator. */
function lineOf(sql: string, position: string | undefined): number | undefined {
  const pos = Number(position);
  if (!Number.isInteger(pos) || pos < 1) return undefined;
  return sql.slice(0, pos - 1).split('\n').length;
}

/**
 * Builds `applyMigrations`.
 *
 * Idempotent by check-then-act under a lock: the run takes a session-level PostgreSQL advisory lock (one
 * key per migrations table), then reads which files are recorded and applies only the others; each file
 * and its record commit in the same transaction, so a file is either applied and recorded or neither. Two
 * concurrent runs (or a retry racing a stuck attempt) therefore never apply a file twice; the loser waits,
 * heartbeating `waiting-for-lock`, and then finds everything recorded. A retry after a crash resumes from
 * the table: the heartbeat (`applied` so far) is progress for the operator, the table is the truth.
 *
 * Fails with: `PolicyViolation` when a recorded file's content changed (its sha256 differs; nothing is
 * applied; write a new migration instead); `OperationFailed` naming the file, line and PostgreSQL message
 * when a file's SQL fails (that file is rolled back, earlier files stay applied); `UpstreamUnavailable`
 * (retryable) when the server is unreachable or the connection breaks; `Unauthorized` for authentication
 * or privilege errors; `InvalidInput` when the migrations directory cannot be read. Cancellation cancels
 * the running statement on the server, rolls the current file back and releases the lock.
 *
 * Files must not contain their own `BEGIN`/`COMMIT` or statements that cannot run in a transaction
 * (`CREATE INDEX CONCURRENTLY`, `VACUUM`).
 */
export function makeApplyMigrations(deps: MigrationsDependencies) {
  const { settings, log } = deps;
  const tableName = `${quoteIdent(deps.migrationsTable.schema)}.${quoteIdent(deps.migrationsTable.table)}`;
  const qualified = `${deps.migrationsTable.schema}.${deps.migrationsTable.table}`;
  const key = lockKey(qualified);
  const redactor = settings.redactor;
  const op = (operation: string) => ({ operation, redactor });

  async function query<T extends object>(
    conn: OpenConnection,
    text: string,
    params: unknown[],
    operation: string,
  ): Promise<T[]> {
    try {
      return (await conn.client.query<T>(text, params)).rows;
    } catch (err) {
      throw classifyPostgresError(err, op(operation));
    }
  }

  async function acquireLock(conn: OpenConnection, signal: AbortSignal): Promise<void> {
    for (;;) {
      throwIfCancelled(signal);
      const rows = await query<{ locked: boolean }>(
        conn,
        'SELECT pg_try_advisory_lock($1::bigint) AS locked',
        [key],
        'take the migrations lock',
      );
      if (rows[0]?.locked) return;
      const progress: ApplyMigrationsProgress = { phase: 'waiting-for-lock', applied: [] };
      heartbeat(progress);
      await sleepCancellable(deps.lockPollMs);
    }
  }

  async function ensureTable(conn: OpenConnection): Promise<void> {
    try {
      await ensureSchema(conn.client, deps.migrationsTable.schema);
      await conn.client.query(
        `CREATE TABLE IF NOT EXISTS ${tableName} (
           name text PRIMARY KEY,
           checksum text NOT NULL CHECK (checksum ~ '^[0-9a-f]{64}$'),
           applied_at timestamptz NOT NULL DEFAULT now(),
           applied_by text NOT NULL
         )`,
      );
    } catch (err) {
      throw classifyPostgresError(err, op(`create the migrations table ${qualified}`));
    }
  }

  async function applyFile(conn: OpenConnection, file: MigrationFile, by: string, signal: AbortSignal) {
    try {
      await conn.client.query('BEGIN');
      await conn.client.query(file.sql);
      await conn.client.query(`INSERT INTO ${tableName} (name, checksum, applied_by) VALUES ($1, $2, $3)`, [
        file.name,
        file.checksum,
        by,
      ]);
      await conn.client.query('COMMIT');
    } catch (err) {
      await conn.client.query('ROLLBACK').catch(() => undefined);
      throwIfCancelled(signal);
      const e = err as { code?: string; position?: string; message?: string };
      const cls = classifySqlState(e.code);
      if (cls !== 'failed') throw classifyPostgresError(err, op(`apply migration ${file.name}`));
      const line = lineOf(file.sql, e.position);
      const at = line ? ` at line ${line}` : '';
      throw failure(
        FailureType.OperationFailed,
        redactor.redact(
          `migration ${file.name} failed${at}: ${e.message ?? String(err)} [SQLSTATE ${e.code}]; ` +
            'it was rolled back and earlier files stay applied; correct this file (it was never applied) and run again',
        ),
        { details: { file: file.name, line, sqlState: e.code } },
      );
    }
  }

  /** Applies the pending migration files once each; see the factory's TSDoc. */
  return async function applyMigrations(input: ApplyMigrationsInput = {}): Promise<ApplyMigrationsResult> {
    const { dryRun } = parseInput(ApplyMigrationsInput, input, 'applyMigrations');
    const signal = cancellationSignal();
    const files = await readMigrations(deps.migrationsDir);
    const by = workflowId();
    throwIfCancelled(signal);
    const conn = await openConnection(settings, 'connect to apply migrations');
    const onAbort = () => void cancelBackend(settings, conn.pid);
    signal.addEventListener('abort', onAbort);
    let locked = false;
    try {
      if (!dryRun) {
        await acquireLock(conn, signal);
        locked = true;
        await ensureTable(conn);
      }
      const exists = await query<{ t: string | null }>(
        conn,
        'SELECT to_regclass($1)::text AS t',
        [tableName],
        'read the migrations table',
      );
      const recorded = new Map<string, string>();
      if (exists[0]?.t) {
        const rows = await query<{ name: string; checksum: string }>(
          conn,
          `SELECT name, checksum FROM ${tableName}`,
          [],
          'read the migrations table',
        );
        for (const r of rows) recorded.set(r.name, r.checksum);
      }
      const changed = files.filter((f) => recorded.has(f.name) && recorded.get(f.name) !== f.checksum);
      if (changed.length > 0) {
        const names = changed.map((f) => f.name);
        throw failure(
          FailureType.PolicyViolation,
          `migration files already applied have changed since: ${names.join(', ')}; applied migrations are ` +
            'immutable, restore their original content and put the change in a new file',
          { details: { changed: names } },
        );
      }
      const onDisk = new Set(files.map((f) => f.name));
      const missing = [...recorded.keys()].filter((n) => !onDisk.has(n));
      if (missing.length > 0)
        log(`applyMigrations: recorded but not on disk (ignored): ${missing.join(', ')}`);

      const skipped = files.filter((f) => recorded.has(f.name)).map((f) => f.name);
      const pending = files.filter((f) => !recorded.has(f.name));
      if (dryRun) return { applied: [], skipped, pending: pending.map((f) => f.name) };

      const applied: string[] = [];
      for (const file of pending) {
        throwIfCancelled(signal);
        const started = Date.now();
        const beat = setInterval(() => {
          const progress: ApplyMigrationsProgress = {
            phase: 'applying',
            applied: [...applied],
            running: file.name,
            runningForMs: Date.now() - started,
          };
          heartbeat(progress);
        }, deps.runningHeartbeatMs);
        try {
          await applyFile(conn, file, by, signal);
        } finally {
          clearInterval(beat);
        }
        applied.push(file.name);
        log(`applyMigrations: applied ${file.name} in ${Date.now() - started} ms`);
        const progress: ApplyMigrationsProgress = { phase: 'applying', applied: [...applied] };
        heartbeat(progress);
      }
      return { applied, skipped, pending: [] };
    } finally {
      signal.removeEventListener('abort', onAbort);
      if (locked)
        await conn.client.query('SELECT pg_advisory_unlock($1::bigint)', [key]).catch(() => undefined);
      await conn.close();
    }
  };
}
