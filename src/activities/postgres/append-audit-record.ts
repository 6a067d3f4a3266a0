/**
 * `appendAuditRecord` (H4): every deployment step is recorded in the append-only table
 * `internal.audit_deploy`.
 */
import { Context } from '@temporalio/activity';
import crypto from 'node:crypto';
import type { SecretRedactor } from '../../config/credential-ref';
import { cancellationSignal, idempotencyKey } from '../activity-support';
import { classifyPostgresError } from './classify-postgres-failure';
import type pg from 'pg';
import type { ConnectionSettings } from './postgres-connection';
import { KeptConnections, ensureSchema, throwIfCancelled } from './postgres-connection';
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
 * Calls share up to four connections kept open between them (see `KeptConnections`), which close after ten
 * idle seconds and never keep the worker's process alive.
 *
 * Fails with: `UpstreamUnavailable` (retryable) when the server is unreachable; `Unauthorized` on
 * authentication or privilege errors (the role needs INSERT and SELECT on the table, and CREATE on the
 * database the first time); `InvalidInput` for a malformed record; `OperationFailed` for other SQL errors.
 */
export function makeAppendAuditRecord(deps: AuditDependencies) {
  const { settings } = deps;
  const redactor = settings.redactor;
  const ddlLock = crypto.createHash('sha256').update(`aceh-release:ddl:${TABLE}`).digest().readBigInt64BE(0);
  const connections = new KeptConnections(settings);
  let ensured = false;

  async function ensureTable(c: pg.ClientBase): Promise<void> {
    if (ensured) return;
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

  /**
   * Inserts rows in one statement (so in one transaction: all or none), each once per key, in order; returns
   * per row its id and whether this call wrote it. Rows whose key exists already are read back.
   */
  async function insertRows(
    c: pg.ClientBase,
    rows: { record: AppendAuditRecordInput; key: string }[],
    execution: { workflowId: string; runId: string | null },
  ): Promise<AppendAuditRecordResult[]> {
    const text = (v: string | undefined) => (v === undefined ? null : redactor.redact(v));
    const column = (f: (r: AppendAuditRecordInput) => string | undefined) =>
      rows.map((r) => text(f(r.record)));
    try {
      const inserted = await c.query<{ key: string; id: string }>(
        `INSERT INTO ${TABLE}
           (workflow_id, run_id, step, actor, action, version, digest, decision, details, idempotency_key)
         SELECT $1, $2, step, actor, action, version, digest, decision, details::jsonb, key
           FROM unnest($3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[],
                       $10::text[])
                WITH ORDINALITY AS r(step, actor, action, version, digest, decision, details, key, n)
          ORDER BY n
         ON CONFLICT (idempotency_key) DO NOTHING
         RETURNING idempotency_key AS key, id::text AS id`,
        [
          execution.workflowId,
          execution.runId,
          column((r) => r.step),
          column((r) => r.actor),
          column((r) => r.action),
          column((r) => r.version),
          column((r) => r.digest),
          column((r) => r.decision),
          rows.map((r) => JSON.stringify(redactDeep(r.record.details ?? {}, redactor))),
          rows.map((r) => r.key),
        ],
      );
      const written = new Map(inserted.rows.map((r) => [r.key, r.id]));
      const missing = rows.map((r) => r.key).filter((k) => !written.has(k));
      const existing = new Map<string, string>();
      if (missing.length > 0) {
        const found = await c.query<{ key: string; id: string }>(
          `SELECT idempotency_key AS key, id::text AS id FROM ${TABLE} WHERE idempotency_key = ANY($1::text[])`,
          [missing],
        );
        for (const r of found.rows) existing.set(r.key, r.id);
      }
      return rows.map(({ key }) => {
        const id = written.get(key);
        if (id !== undefined) {
          // A key given twice in one batch is written once: the second is the row recorded first.
          written.delete(key);
          existing.set(key, id);
          return { id, inserted: true };
        }
        const existingId = existing.get(key);
        if (existingId === undefined)
          throw new Error(`the row with idempotency key ${key} conflicted but cannot be read back`);
        return { id: existingId, inserted: false };
      });
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

  /** Writes rows on a kept connection; a connection that saw an error is dropped. */
  async function write(
    rows: { record: AppendAuditRecordInput; key: string }[],
  ): Promise<AppendAuditRecordResult[]> {
    const signal = cancellationSignal();
    const execution = executionOf();
    throwIfCancelled(signal);
    const client = await connections.acquire(`connect to append to ${TABLE}`);
    let broken = true;
    try {
      await ensureTable(client);
      throwIfCancelled(signal);
      const results = await insertRows(client, rows, execution);
      broken = false;
      return results;
    } finally {
      client.release(broken);
    }
  }

  /** Appends one audit row, once per idempotency key; see the factory's TSDoc. */
  async function appendAuditRecord(input: AppendAuditRecordInput): Promise<AppendAuditRecordResult> {
    const record = parseInput(AppendAuditRecordInput, input, 'appendAuditRecord');
    const [result] = await write([{ record, key: record.idempotencyKey ?? idempotencyKey() }]);
    return result!;
  }

  /**
   * Appends several rows in order in one statement, each once per its idempotency key (a retry writes
   * only the rows that are missing). One call instead of one per row: fewer round trips, and fewer
   * workflow tasks for the workflow that writes them.
   */
  async function appendAuditRecords(input: AppendAuditRecordsInput): Promise<AppendAuditRecordsResult> {
    const { rows } = parseInput(AppendAuditRecordsInput, input, 'appendAuditRecords');
    return { rows: await write(rows.map((record) => ({ record, key: record.idempotencyKey }))) };
  }

  return { appendAuditRecord, appendAuditRecords };
}
