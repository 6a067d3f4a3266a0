import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PostgresCluster } from '../../../src/sandbox/postgres-cluster';
import { startPostgresCluster } from '../../../src/sandbox/postgres-cluster';
import { APP_ROLE, PostgresTestKit, failureOf } from './postgres-test-kit';

let cluster: PostgresCluster;
let kit: PostgresTestKit;

beforeAll(async () => {
  cluster = await startPostgresCluster();
  kit = new PostgresTestKit(cluster);
});

afterAll(async () => {
  kit?.cleanup();
  await cluster?.destroy();
});

const record = {
  step: 'production-deploy',
  actor: 'alice@acehcommerce.id',
  action: 'deploy',
  version: 'v1.2.0',
  digest: `sha256:${'a'.repeat(64)}`,
  decision: 'approved',
  details: { strategy: 'blue-green', colour: 'green' },
};

interface AuditRow {
  id: string;
  workflow_id: string;
  run_id: string | null;
  step: string;
  actor: string;
  action: string;
  version: string | null;
  digest: string | null;
  decision: string | null;
  details: Record<string, unknown>;
  idempotency_key: string;
}

const rows = (db: string) =>
  kit.query<AuditRow>(
    db,
    `SELECT a.id::text AS id, workflow_id, run_id, step, actor, action, version, digest, decision, details,
            idempotency_key
       FROM internal.audit_deploy a ORDER BY a.id`,
  );

describe('appendAuditRecord', () => {
  it('creates internal.audit_deploy on first use and appends one row with the workflow and run ids', async () => {
    const db = await kit.freshDatabase('audit');
    const acts = kit.activities(db);
    const { env, run, workflowId } = kit.env('append-1');

    const result = await run(acts.appendAuditRecord, record);

    expect(result).toEqual({ id: expect.stringMatching(/^\d+$/) as unknown, inserted: true });
    const [row, ...more] = await rows(db);
    expect(more).toEqual([]);
    expect(row).toMatchObject({
      id: result.id,
      workflow_id: workflowId,
      run_id: env.context.info.workflowExecution?.runId,
      ...record,
      idempotency_key: `${workflowId}/append-1`,
    });
  });

  it('is idempotent per workflow step: a retry returns the same id and adds nothing', async () => {
    const db = await kit.freshDatabase('audit');
    const acts = kit.activities(db);
    const { run } = kit.env('append-1');
    const first = await run(acts.appendAuditRecord, record);
    const retry = await run(acts.appendAuditRecord, record);
    expect(retry).toEqual({ id: first.id, inserted: false });

    // Another step of the same workflow (another activity id) is another row.
    const other = await kit.env('append-2', (await rows(db))[0]?.workflow_id).run(acts.appendAuditRecord, {
      ...record,
      step: 'switch-traffic',
    });
    expect(other.inserted).toBe(true);
    expect(other.id).not.toBe(first.id);

    // An explicit key dedupes across activities (e.g. the CLI and a workflow recording the same event).
    const a = await kit
      .env('x')
      .run(acts.appendAuditRecord, { ...record, idempotencyKey: 'release/v1.2.0/approve' });
    const b = await kit
      .env('y')
      .run(acts.appendAuditRecord, { ...record, idempotencyKey: 'release/v1.2.0/approve' });
    expect(b).toEqual({ id: a.id, inserted: false });
    expect(await rows(db)).toHaveLength(3);
  });

  it('concurrent first appends on an empty database both succeed, and the same key twice at once gives one row', async () => {
    const db = await kit.freshDatabase('audit');
    const [one, two] = [kit.activities(db), kit.activities(db)];
    const [a, b] = await Promise.all([
      kit.env('a').run(one.appendAuditRecord, record),
      kit.env('b').run(two.appendAuditRecord, record),
    ]);
    expect(a.inserted && b.inserted).toBe(true);
    expect(a.id).not.toBe(b.id);

    const same = { ...record, idempotencyKey: 'same-key' };
    const [c, d] = await Promise.all([
      kit.env('c').run(one.appendAuditRecord, same),
      kit.env('d').run(two.appendAuditRecord, same),
    ]);
    expect(c.id).toBe(d.id);
    expect([c.inserted, d.inserted].sort()).toEqual([false, true]);
    expect(await rows(db)).toHaveLength(3);
  });

  it('is append-only: UPDATE, DELETE and TRUNCATE fail, for the application role and the superuser alike', async () => {
    const db = await kit.freshDatabase('audit');
    const acts = kit.activities(db);
    await kit.env().run(acts.appendAuditRecord, record);

    for (const sql of [
      "UPDATE internal.audit_deploy SET decision = 'rejected'",
      'DELETE FROM internal.audit_deploy',
      'TRUNCATE internal.audit_deploy',
    ]) {
      await expect(kit.appQuery(db, sql), sql).rejects.toThrow(/append-only|permission denied/);
      await expect(kit.query(db, sql), sql).rejects.toThrow(/append-only/);
    }
    expect(await rows(db)).toMatchObject([{ decision: 'approved' }]);
  });

  it('never stores a known secret: the database password in a record is redacted', async () => {
    const db = await kit.freshDatabase('audit');
    const acts = kit.activities(db);
    await kit.env().run(acts.appendAuditRecord, {
      ...record,
      action: `deploy with ${APP_ROLE.password}`,
      details: { nested: [{ oops: `password=${APP_ROLE.password}` }] },
    });
    const [row] = await rows(db);
    expect(JSON.stringify(row)).not.toContain(APP_ROLE.password);
    expect(row?.details).toEqual({ nested: [{ oops: 'password=[redacted]' }] });
  });

  it('an invalid record is InvalidInput', async () => {
    const db = await kit.freshDatabase('audit');
    const acts = kit.activities(db);
    const f = await failureOf(kit.env().run(acts.appendAuditRecord, { ...record, step: '' }));
    expect(f.type).toBe('InvalidInput');
    expect(f.nonRetryable).toBe(true);
    expect(f.message).toContain('step');
  });

  it('a wrong password is Unauthorized, and no message contains it', async () => {
    const db = await kit.freshDatabase('audit');
    const wrong = 'Wrong-Audit-Passw0rd';
    const acts = kit.activities(db, {
      connection: {
        host: cluster.host,
        port: cluster.port,
        database: db,
        user: APP_ROLE.user,
        password: wrong,
      },
    });
    const f = await failureOf(kit.env().run(acts.appendAuditRecord, record));
    expect(f.type).toBe('Unauthorized');
    expect(f.nonRetryable).toBe(true);
    expect(JSON.stringify([f.message, f.details, f.stack])).not.toContain(wrong);
  });

  it('a role without INSERT on the table is Unauthorized', async () => {
    const db = await kit.freshDatabase('audit');
    await kit.env().run(kit.activities(db).appendAuditRecord, record);
    const reader = { user: 'audit_reader', password: 'Reader-pw-1234' };
    await cluster
      .query(`CREATE ROLE ${reader.user} LOGIN PASSWORD '${reader.password}'`)
      .catch(() => undefined);
    await kit.query(db, `GRANT USAGE ON SCHEMA internal TO ${reader.user}`);
    await kit.query(db, `GRANT SELECT ON internal.audit_deploy TO ${reader.user}`);
    const acts = kit.activities(db, {
      connection: { host: cluster.host, port: cluster.port, database: db, ...reader },
    });
    const f = await failureOf(kit.env().run(acts.appendAuditRecord, record));
    expect(f.type).toBe('Unauthorized');
    expect(f.message).toContain('permission denied');
  });

  it('a server that is down is UpstreamUnavailable and retryable', async () => {
    const acts = kit.activities('audit_down', {
      connection: { host: '127.0.0.1', port: 1, database: 'audit_down', ...APP_ROLE },
    });
    const f = await failureOf(kit.env().run(acts.appendAuditRecord, record));
    expect(f.type).toBe('UpstreamUnavailable');
    expect(f.nonRetryable).toBe(false);
  });
});

describe('appendAuditRecords', () => {
  it('appends a batch in order on one call, and a retry of the batch writes nothing twice', async () => {
    const db = await kit.freshDatabase('audit');
    const acts = kit.activities(db);
    const { run, workflowId } = kit.env('batch-1');
    const batch = [1, 2, 3].map((seq) => ({
      ...record,
      action: `step-${seq}`,
      details: { seq },
      idempotencyKey: `${workflowId}/audit/${seq}`,
    }));

    const first = await run(acts.appendAuditRecords, { rows: batch.slice(0, 2) });
    expect(first.rows.map((r) => r.inserted)).toEqual([true, true]);
    // The retry of a batch that was cut short: the first two rows are there, only the third is new.
    const again = await run(acts.appendAuditRecords, { rows: batch });
    expect(again.rows.map((r) => r.inserted)).toEqual([false, false, true]);
    expect(again.rows.slice(0, 2).map((r) => r.id)).toEqual(first.rows.map((r) => r.id));

    const written = await rows(db);
    expect(written.map((r) => [r.action, r.details['seq'], r.workflow_id])).toEqual([
      ['step-1', 1, workflowId],
      ['step-2', 2, workflowId],
      ['step-3', 3, workflowId],
    ]);
  });

  it('writes a batch whole or not at all, and a key given twice in it once', async () => {
    const db = await kit.freshDatabase('audit');
    const acts = kit.activities(db);
    const { run, workflowId } = kit.env('batch-3');
    const row = (seq: number, action = `step-${seq}`) => ({
      ...record,
      action,
      details: { seq },
      idempotencyKey: `${workflowId}/audit/${seq}`,
    });
    // PostgreSQL cannot store a NUL character: the third row fails, so the statement writes none.
    const f = await failureOf(run(acts.appendAuditRecords, { rows: [row(1), row(2), row(3, 'nul\u0000')] }));
    expect(f.type).toBe('OperationFailed');
    expect(await rows(db)).toEqual([]);

    const written = await run(acts.appendAuditRecords, { rows: [row(1), row(2), row(1)] });
    expect(written.rows.map((r) => r.inserted)).toEqual([true, true, false]);
    expect(written.rows[2]!.id).toBe(written.rows[0]!.id);
    expect((await rows(db)).map((r) => r.action)).toEqual(['step-1', 'step-2']);
  });

  it('keeps its connection between calls, and connects again when the server dropped it', async () => {
    const db = await kit.freshDatabase('audit');
    const acts = kit.activities(db);
    const { run, workflowId } = kit.env('batch-4');
    const row = (seq: number) => ({
      ...record,
      details: { seq },
      idempotencyKey: `${workflowId}/audit/${seq}`,
    });
    const backends = async () =>
      (
        await kit.query<{ pid: number }>(
          db,
          `SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()`,
        )
      ).map((r) => r.pid);

    for (let seq = 1; seq <= 5; seq++) await run(acts.appendAuditRecords, { rows: [row(seq)] });
    const kept = await backends();
    expect(kept).toHaveLength(1);

    // The server ends the kept connection (a restart, an idle timeout of a proxy): nothing is lost.
    await kit.query(db, 'SELECT pg_terminate_backend($1)', [kept[0]]);
    while ((await backends()).length > 0) await new Promise((resolve) => setTimeout(resolve, 20));
    // The closed socket reaches the worker's event loop; the pool drops the connection.
    await new Promise((resolve) => setTimeout(resolve, 100));
    await run(acts.appendAuditRecords, { rows: [row(6)] });
    expect((await rows(db)).map((r) => r.details['seq'])).toEqual([1, 2, 3, 4, 5, 6]);
    const now = await backends();
    expect(now).toHaveLength(1);
    expect(now[0]).not.toBe(kept[0]);
  });

  it('with every kept connection busy, a further call waits, then fails as retryable', async () => {
    const db = await kit.freshDatabase('audit');
    const acts = kit.activities(db, { connectTimeoutMs: 1000 });
    const { run, workflowId } = kit.env('batch-5');
    const row = (seq: number) => ({
      ...record,
      details: { seq },
      idempotencyKey: `${workflowId}/audit/${seq}`,
    });
    await run(acts.appendAuditRecords, { rows: [row(0)] });

    // Someone holds the table: the four kept connections each wait on it with a row.
    const holder = new pg.Client({
      host: cluster.host,
      port: cluster.port,
      database: db,
      user: cluster.superuser,
      password: cluster.superuserPassword,
    });
    await holder.connect();
    try {
      await holder.query('BEGIN');
      await holder.query('LOCK TABLE internal.audit_deploy IN ACCESS EXCLUSIVE MODE');
      const waiting = [1, 2, 3, 4].map((seq) => run(acts.appendAuditRecords, { rows: [row(seq)] }));
      const f = await failureOf(run(acts.appendAuditRecords, { rows: [row(5)] }));
      expect(f.type).toBe('UpstreamUnavailable');
      expect(f.nonRetryable).toBe(false);
      await holder.query('COMMIT');
      expect((await Promise.all(waiting)).map((r) => r.rows[0]!.inserted)).toEqual([true, true, true, true]);
    } finally {
      await holder.end();
    }
    // The retry of the refused call, once a connection is free, writes its row. (The four waiting calls
    // wrote theirs in whatever order the lock let them go.)
    await run(acts.appendAuditRecords, { rows: [row(5)] });
    const seqs = (await rows(db)).map((r) => r.details['seq'] as number);
    expect(seqs.at(-1)).toBe(5);
    expect(seqs.sort()).toEqual([0, 1, 2, 3, 4, 5]);
  });

  it('refuses a row without its own idempotency key, writing nothing', async () => {
    const db = await kit.freshDatabase('audit');
    const acts = kit.activities(db);
    const { run } = kit.env('batch-2');
    const f = await failureOf(run(acts.appendAuditRecords, { rows: [record as never] }));
    expect(f.type).toBe('InvalidInput');
    expect(f.message).toContain('idempotencyKey');
    expect(await kit.query(db, `SELECT to_regclass('internal.audit_deploy') AS t`)).toEqual([{ t: null }]);
  });
});
