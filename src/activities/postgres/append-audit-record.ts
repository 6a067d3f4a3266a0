/**
 * `appendAuditRecord` (H4): every deployment step is recorded in the append-only table
 * `internal.audit_deploy`.
 */
import { Context } from '@temporalio/activity';
import crypto from 'node:crypto';
import type { SecretRedactor } from '../../config/credential-ref';
import { cancellationSignal, idempotencyKey } from '../activity-support';
import { classifyPostgresError } from './classify-postgres-failure';
import type { ConnectionSettings, OpenConnection } from './postgres-connection';
import { ensureSchema, openConnection, throwIfCancelled } from './postgres-connection';
import type { AppendAuditRecordResult, AppendAuditRecordsResult } from './postgres-schemas';
import { AppendAuditRecordInput, AppendAuditRecordsInput } from './postgres-schemas';
import { parseActivityInput as parseInput } from '../activity-support';

/** Where the audit log lives (H4). A restore leaves every object whose name starts with the table's alone. */
export const AUDIT_SCHEMA = 'internal';
export const AUDIT_TABLE = 'audit_deploy';

const TABLE = `${AUDIT_SCHEMA}.${AUDIT_TABLE}`;

/**
 * The table, and a trigger that makes it append-only for everyone, its owner included: UPDATE, DELETE and
 * TRUNCATE raise `insufficient_privilege`. Privileges are revoked from PUBLIC as well, but the trigger is
 * what holds, since owners and superusers ignore privileges.
 */
const AUDIT_DDL = [
  `CREATE TABLE IF NOT EXISTS ${TABLE} (
     id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
     at timestamptz NOT NULL DEFAULT now(),
     workflow_id text NOT NULL,
     run_id text,
     step text NOT NULL,
     actor text NOT NULL,
     action text NOT NULL,
     version text,
     digest text,
     decision text,
     details jsonb NOT NULL DEFAULT '{}'::jsonb,
     idempotency_key text NOT NULL UNIQUE
   )`,
  `CREATE OR REPLACE FUNCTION ${AUDIT_SCHEMA}.${AUDIT_TABLE}_append_only() RETURNS trigger
     LANGUAGE plpgsql AS $$
   BEGIN
     RAISE EXCEPTION '${TABLE} is append-only: % is not allowed', TG_OP
       USING ERRCODE = 'insufficient_privilege';
   END
   $$`,
  `CREATE OR REPLACE TRIGGER ${AUDIT_TABLE}_append_only BEFORE UPDATE OR DELETE ON ${TABLE}
     FOR EACH ROW EXECUTE FUNCTION ${AUDIT_SCHEMA}.${AUDIT_TABLE}_append_only()`,
  `CREATE OR REPLACE TRIGGER ${AUDIT_TABLE}_no_truncate BEFORE TRUNCATE ON ${TABLE}
     FOR EACH STATEMENT EXECUTE FUNCTION ${AUDIT_SCHEMA}.${AUDIT_TABLE}_append_only()`,
  `REVOKE UPDATE, DELETE, TRUNCATE ON ${TABLE} FROM PUBLIC`,
];

export interface AuditDependencies {
  settings: ConnectionSettings;
  log: (message: string) => void;
}

/** Replaces known secrets in every string of a JSON-like value. */
function redactDeep(value: unknown, redactor: SecretRedactor): unknown {
  if (typeof value === 'string') return redactor.redact(value);
  if (Array.isArray(value)) return value.map((v) => redactDeep(v, redactor));
  if (value && typeof value === 'object')
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, redactDeep(v, redactor)]));
  return value;
}

/**
 * Builds `appendAuditRecord` and its batch form `appendAuditRecords`.
 *
 * Idempotent per workflow step: each row carries a unique `idempotency_key` (by default
 * `<workflowId>/<activityId>`, the same for every attempt of the activity) and is inserted with
 * `ON CONFLICT DO NOTHING`; a retry or replay returns the id of the row recorded first, with
 * `inserted: false`. The first call on a database creates `internal.audit_deploy` and its append-only
 * trigger (under a transaction-scoped advisory lock, so concurrent first calls do not collide).
 *
 * Fails with: `UpstreamUnavailable` (retryable) when the server is unreachable; `Unauthorized` on
 * authentication or privilege errors (the role needs INSERT and SELECT on the table, and CREATE on the
 * database the first time); `InvalidInput` for a malformed record; `OperationFailed` for other SQL errors.
 */
export function makeAppendAuditRecord(deps: AuditDependencies) {
  const { settings } = deps;
  const redactor = settings.redactor;
  const ddlLock = crypto.createHash('sha256').update(`aceh-release:ddl:${TABLE}`).digest().readBigInt64BE(0);
  let ensured = false;

  async function ensureTable(conn: OpenConnection): Promise<void> {
    if (ensured) return;
    const c = conn.client;
    try {
      const present = await c.query<{ n: string }>(
        `SELECT count(*)::text AS n FROM pg_trigger
          WHERE tgrelid = to_regclass($1) AND tgname IN ($2, $3)`,
        [TABLE, `${AUDIT_TABLE}_append_only`, `${AUDIT_TABLE}_no_truncate`],
      );
      if (present.rows[0]?.n !== '2') {
        await c.query('BEGIN');
        try {
          await c.query('SELECT pg_advisory_xact_lock($1::bigint)', [ddlLock.toString()]);
          await ensureSchema(c, AUDIT_SCHEMA);
          for (const statement of AUDIT_DDL) await c.query(statement);
          await c.query('COMMIT');
        } catch (err) {
          await c.query('ROLLBACK').catch(() => undefined);
          throw err;
        }
        deps.log(`appendAuditRecord: ensured ${TABLE} and its append-only trigger`);
      }
      ensured = true;
    } catch (err) {
      throw classifyPostgresError(err, { operation: `create ${TABLE}`, redactor });
    }
  }

  /** Inserts one row once per key on an open connection; returns its id and whether this call wrote it. */
  async function insertRow(
    conn: OpenConnection,
    record: AppendAuditRecordInput,
    key: string,
    execution: { workflowId: string; runId: string | null },
  ): Promise<AppendAuditRecordResult> {
    const text = (v: string | undefined) => (v === undefined ? null : redactor.redact(v));
    try {
      const inserted = await conn.client.query<{ id: string }>(
        `INSERT INTO ${TABLE}
           (workflow_id, run_id, step, actor, action, version, digest, decision, details, idempotency_key)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9::jsonb, $10)
         ON CONFLICT (idempotency_key) DO NOTHING
         RETURNING id::text AS id`,
        [
          execution.workflowId,
          execution.runId,
          text(record.step),
          text(record.actor),
          text(record.action),
          text(record.version),
          text(record.digest),
          text(record.decision),
          JSON.stringify(redactDeep(record.details ?? {}, redactor)),
          key,
        ],
      );
      const id = inserted.rows[0]?.id;
      if (id !== undefined) return { id, inserted: true };
      const existing = await conn.client.query<{ id: string }>(
        `SELECT id::text AS id FROM ${TABLE} WHERE idempotency_key = $1`,
        [key],
      );
      const existingId = existing.rows[0]?.id;
      if (existingId === undefined)
        throw new Error(`the row with idempotency key ${key} conflicted but cannot be read back`);
      return { id: existingId, inserted: false };
    } catch (err) {
      throw classifyPostgresError(err, { operation: `append to ${TABLE}`, redactor });
    }
  }

  function executionOf(): { workflowId: string; runId: string | null } {
    const info = Context.current().info;
    return {
      workflowId: info.workflowExecution?.workflowId ?? `activity:${info.activityId}`,
      runId: info.workflowExecution?.runId ?? null,
    };
  }

  /** Appends one audit row, once per idempotency key; see the factory's TSDoc. */
  async function appendAuditRecord(input: AppendAuditRecordInput): Promise<AppendAuditRecordResult> {
    const record = parseInput(AppendAuditRecordInput, input, 'appendAuditRecord');
    const signal = cancellationSignal();
    const key = record.idempotencyKey ?? idempotencyKey();
    const execution = executionOf();
    throwIfCancelled(signal);
    const conn = await openConnection(settings, `connect to append to ${TABLE}`);
    try {
      await ensureTable(conn);
      return await insertRow(conn, record, key, execution);
    } finally {
      await conn.close();
    }
  }

  /**
   * Appends several rows in order on one connection, each once per its idempotency key (a retry writes
   * only the rows the failed attempt did not). One call instead of one per row: fewer round trips, and
   * fewer workflow tasks for the workflow that writes them.
   */
  async function appendAuditRecords(input: AppendAuditRecordsInput): Promise<AppendAuditRecordsResult> {
    const { rows } = parseInput(AppendAuditRecordsInput, input, 'appendAuditRecords');
    const signal = cancellationSignal();
    const execution = executionOf();
    throwIfCancelled(signal);
    const conn = await openConnection(settings, `connect to append to ${TABLE}`);
    try {
      await ensureTable(conn);
      const results: AppendAuditRecordResult[] = [];
      for (const row of rows) {
        throwIfCancelled(signal);
        results.push(await insertRow(conn, row, row.idempotencyKey, execution));
      }
      return { rows: results };
    } finally {
      await conn.close();
    }
  }

  return { appendAuditRecord, appendAuditRecords };
}
