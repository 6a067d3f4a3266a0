import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { SnapshotProgress, TakeSnapshotResult } from '../../../src/activities/postgres';
import type { PostgresCluster } from '../../../src/sandbox/postgres-cluster';
import { startPostgresCluster } from '../../../src/sandbox/postgres-cluster';
import { APP_ROLE, PostgresTestKit, expectCancelled, failureOf, processExists } from './postgres-test-kit';

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

const PRODUCTS = [
  { id: 1, name: 'kopi gayo', price: '85000.00' },
  { id: 2, name: 'mie aceh', price: '30000.00' },
  { id: 3, name: 'kuah beulangong', price: '55000.00' },
];

/** A database with application data, applied migrations and an audit row, like a real release target. */
async function seededDatabase() {
  const db = await kit.freshDatabase('snap');
  const acts = kit.activities(db, {
    migrationsDir: kit.writeMigrations({
      '001_products.sql':
        'CREATE TABLE products (id int PRIMARY KEY, name text NOT NULL, price numeric(12,2) NOT NULL);\n' +
        "INSERT INTO products VALUES (1, 'kopi gayo', 85000), (2, 'mie aceh', 30000), (3, 'kuah beulangong', 55000);\n",
    }),
  });
  await kit.env().run(acts.applyMigrations, {});
  await kit.env().run(acts.appendAuditRecord, { step: 'seed', actor: 'test', action: 'seed' });
  return { db, acts };
}

const products = (db: string) =>
  kit.query(db, 'SELECT id, name, price::text AS price FROM products ORDER BY id');
const sha256 = (file: string) => crypto.createHash('sha256').update(fs.readFileSync(file)).digest('hex');
const phases = (heartbeats: unknown[]) => (heartbeats as SnapshotProgress[]).map((h) => h.phase);

describe('takeSnapshot / restoreSnapshot', () => {
  it('snapshots, and a restore after changes brings the data back; the audit log is never rolled back', async () => {
    const { db, acts } = await seededDatabase();
    const snapshotDir = kit.tempDir('snapshots');
    const snaps = kit.activities(db, { snapshotDir });
    const before = Date.now();
    const take = kit.env('snapshot');

    const snap = await take.run(snaps.takeSnapshot, {});

    expect(path.dirname(snap.path)).toBe(snapshotDir);
    expect(path.basename(snap.path)).toMatch(new RegExp(`^${db}--.+\\.dump$`));
    expect(snap.reused).toBe(false);
    expect(snap.sizeBytes).toBe(fs.statSync(snap.path).size);
    expect(snap.sha256).toBe(sha256(snap.path));
    expect(Date.parse(snap.takenAt)).toBeGreaterThanOrEqual(before - 1000);
    expect(fs.readdirSync(snapshotDir).filter((f) => f.endsWith('.partial'))).toEqual([]);
    expect(phases(take.heartbeats)).toContain('dumping');
    expect(take.heartbeats.at(-1)).toEqual({ phase: 'done', bytes: snap.sizeBytes });

    await kit.appQuery(db, 'UPDATE products SET price = 1 WHERE id = 1; DELETE FROM products WHERE id = 2;');
    await kit.appQuery(
      db,
      "INSERT INTO products VALUES (4, 'sate matang', 40000); ALTER TABLE products ADD COLUMN x int",
    );
    await kit.env().run(acts.appendAuditRecord, { step: 'after-snapshot', actor: 'test', action: 'deploy' });

    const restore = kit.env('restore');
    const result = await restore.run(snaps.restoreSnapshot, { snapshot: snap });

    expect(result).toMatchObject({ path: snap.path, stale: false });
    expect(result.ageMs).toBeLessThan(60_000);
    expect(result.preserved.join('\n')).toContain('audit_deploy');
    expect(await products(db)).toEqual(PRODUCTS);
    expect(
      await kit.query(
        db,
        "SELECT count(*)::int AS n FROM information_schema.columns WHERE table_name = 'products' AND column_name = 'x'",
      ),
    ).toEqual([{ n: 0 }]);
    // The audit trail keeps the row written after the snapshot, and stays append-only.
    expect(await kit.query(db, 'SELECT step FROM internal.audit_deploy ORDER BY id')).toEqual([
      { step: 'seed' },
      { step: 'after-snapshot' },
    ]);
    await expect(kit.appQuery(db, 'DELETE FROM internal.audit_deploy')).rejects.toThrow(/append-only/);
    // The migrations record follows the schema it describes.
    expect(await kit.query(db, 'SELECT name FROM internal.schema_migrations')).toEqual([
      { name: '001_products.sql' },
    ]);
    expect(phases(restore.heartbeats)).toContain('verifying');
    expect(phases(restore.heartbeats)).toContain('restoring');
    expect(restore.heartbeats.at(-1)).toMatchObject({ phase: 'done' });

    // Restoring again gives the same state.
    await kit.env().run(snaps.restoreSnapshot, { snapshot: snap });
    expect(await products(db)).toEqual(PRODUCTS);
  });

  it('restores into an empty database (disaster recovery) including the snapshot copy of the audit log', async () => {
    const { db } = await seededDatabase();
    const snapshotDir = kit.tempDir('snapshots');
    const snap = await kit.env().run(kit.activities(db, { snapshotDir }).takeSnapshot, {});
    const empty = await kit.freshDatabase('dr');

    const result = await kit
      .env()
      .run(kit.activities(empty, { snapshotDir }).restoreSnapshot, { snapshot: snap });

    expect(result.preserved).toEqual([]);
    expect(await products(empty)).toEqual(PRODUCTS);
    expect(await kit.query(empty, 'SELECT step FROM internal.audit_deploy')).toEqual([{ step: 'seed' }]);
    await expect(kit.appQuery(empty, 'DELETE FROM internal.audit_deploy')).rejects.toThrow(/append-only/);
  });

  it('is idempotent per key: a retry returns the complete snapshot without dumping again', async () => {
    const { db } = await seededDatabase();
    const snaps = kit.activities(db);
    const { run } = kit.env('snapshot');
    const first = await run(snaps.takeSnapshot, {});
    const mtime = fs.statSync(first.path).mtimeMs;
    await kit.appQuery(db, 'DELETE FROM products');

    const retry = await run(snaps.takeSnapshot, {});

    expect(retry).toEqual({ ...first, reused: true });
    expect(fs.statSync(first.path).mtimeMs).toBe(mtime);
    // Another workflow step is another snapshot.
    const other = await kit.env('snapshot-2').run(snaps.takeSnapshot, {});
    expect(other.path).not.toBe(first.path);
    expect(other.reused).toBe(false);
  });

  it('an incomplete file under the key (no metadata, unreadable) is replaced by a fresh dump', async () => {
    const { db } = await seededDatabase();
    const snapshotDir = kit.tempDir('snapshots');
    const snaps = kit.activities(db, { snapshotDir });
    const first = await kit.env().run(snaps.takeSnapshot, { idempotencyKey: 'nightly/2025-10-14T00' });
    fs.writeFileSync(first.path, 'PGDMP truncated');
    fs.rmSync(first.path.replace(/\.dump$/, '.json'));

    const again = await kit.env().run(snaps.takeSnapshot, { idempotencyKey: 'nightly/2025-10-14T00' });

    expect(again.path).toBe(first.path);
    expect(again.reused).toBe(false);
    expect(again.sha256).toBe(sha256(again.path));
  });

  it('refuses a snapshot older than the RPO (PolicyViolation) and restores it with confirmStale', async () => {
    const { db } = await seededDatabase();
    const snapshotDir = kit.tempDir('snapshots');
    const snap = await kit.env().run(kit.activities(db, { snapshotDir }).takeSnapshot, {});
    await kit.appQuery(db, 'DELETE FROM products WHERE id = 3');
    // Two hours later.
    const later = kit.activities(db, { snapshotDir, clock: () => Date.now() + 2 * 60 * 60 * 1000 });

    const f = await failureOf(kit.env().run(later.restoreSnapshot, { snapshot: snap }));
    expect(f.type).toBe('PolicyViolation');
    expect(f.nonRetryable).toBe(true);
    expect(f.message).toContain('confirmStale');
    expect(f.details?.[0]).toMatchObject({ maxAgeMs: 3_600_000 });
    expect(await products(db)).toHaveLength(2);

    const widened = await kit
      .env()
      .run(later.restoreSnapshot, { snapshot: snap, maxAgeMs: 3 * 60 * 60 * 1000 });
    expect(widened.stale).toBe(false);
    await kit.appQuery(db, 'DELETE FROM products WHERE id = 3');
    const confirmed = await kit.env().run(later.restoreSnapshot, { snapshot: snap, confirmStale: true });
    expect(confirmed.stale).toBe(true);
    expect(confirmed.ageMs).toBeGreaterThan(3_600_000);
    expect(await products(db)).toEqual(PRODUCTS);
  });

  it('refuses a corrupt snapshot (ContractViolation) and leaves the database untouched', async () => {
    const { db } = await seededDatabase();
    const snapshotDir = kit.tempDir('snapshots');
    const snaps = kit.activities(db, { snapshotDir });
    const snap = await kit.env().run(snaps.takeSnapshot, {});
    await kit.appQuery(db, 'DELETE FROM products');
    const bytes = fs.readFileSync(snap.path);
    const middle = Math.floor(bytes.length / 2);
    bytes.writeUInt8(bytes.readUInt8(middle) ^ 0xff, middle);
    fs.writeFileSync(snap.path, bytes);

    const f = await failureOf(kit.env().run(snaps.restoreSnapshot, { snapshot: snap }));
    expect(f.type).toBe('ContractViolation');
    expect(f.nonRetryable).toBe(true);
    expect(f.message).toContain('corrupt');
    expect(await products(db)).toEqual([]);
  });

  it('refuses a path outside the snapshot directory (InvalidInput) and a missing file (NotFound)', async () => {
    const { db } = await seededDatabase();
    const snaps = kit.activities(db);
    const snap: TakeSnapshotResult = await kit.env().run(snaps.takeSnapshot, {});
    const outside = await failureOf(
      kit.env().run(snaps.restoreSnapshot, { snapshot: { ...snap, path: '/etc/passwd' } }),
    );
    expect(outside.type).toBe('InvalidInput');
    fs.rmSync(snap.path);
    const missing = await failureOf(kit.env().run(snaps.restoreSnapshot, { snapshot: snap }));
    expect(missing.type).toBe('NotFound');
  });

  it('a restore that fails is OperationFailed with the pg_restore message, and changes nothing', async () => {
    const { db } = await seededDatabase();
    const snaps = kit.activities(db);
    const snap = await kit.env().run(snaps.takeSnapshot, {});
    await kit.appQuery(db, 'DELETE FROM products WHERE id = 1');
    // A view created after the snapshot depends on the table, so dropping the table (without CASCADE) fails.
    await kit.appQuery(
      db,
      'CREATE SCHEMA reports; CREATE VIEW reports.cheap AS SELECT * FROM products WHERE price < 50000',
    );

    const f = await failureOf(kit.env().run(snaps.restoreSnapshot, { snapshot: snap }));
    expect(f.type).toBe('OperationFailed');
    expect(f.nonRetryable).toBe(true);
    expect(f.message).toContain('pg_restore exited with code 1');
    expect(f.message).toMatch(/depend/);
    expect(f.message).not.toContain(APP_ROLE.password);
    expect(await products(db)).toHaveLength(2);
  });

  it('a wrong password is Unauthorized and appears nowhere', async () => {
    const { db } = await seededDatabase();
    const wrong = 'Wrong-Dump-Passw0rd';
    const logs: string[] = [];
    const snaps = kit.activities(db, {
      connection: {
        host: cluster.host,
        port: cluster.port,
        database: db,
        user: APP_ROLE.user,
        password: wrong,
      },
      log: (m) => logs.push(m),
    });
    const f = await failureOf(kit.env().run(snaps.takeSnapshot, {}));
    expect(f.type).toBe('Unauthorized');
    expect(f.nonRetryable).toBe(true);
    expect(f.message).toContain('password authentication failed');
    expect(JSON.stringify([f.message, f.details, f.stack, logs])).not.toContain(wrong);
  });

  it('pg_dump output that echoes the secret is redacted', async () => {
    // A contrived but real echo: the password is also the (missing) database's name, which pg_dump prints.
    const secret = 'probe-secret-9431';
    await cluster.query(`CREATE ROLE probe LOGIN PASSWORD '${secret}'`);
    const snaps = kit.activities(secret, {
      connection: {
        host: cluster.host,
        port: cluster.port,
        database: secret,
        user: 'probe',
        password: secret,
      },
    });
    const f = await failureOf(kit.env().run(snaps.takeSnapshot, {}));
    expect(f.type).toBe('NotFound');
    expect(f.message).toContain('database "[redacted]" does not exist');
    expect(JSON.stringify([f.message, f.details])).not.toContain(secret);
  });

  it('a server that is down is UpstreamUnavailable and retryable', async () => {
    const snaps = kit.activities('nowhere', {
      connection: { host: '127.0.0.1', port: 1, database: 'nowhere', ...APP_ROLE },
    });
    const f = await failureOf(kit.env().run(snaps.takeSnapshot, {}));
    expect(f.type).toBe('UpstreamUnavailable');
    expect(f.nonRetryable).toBe(false);
    expect(f.message).toContain('Connection refused');
  });

  it('a missing pg_dump binary is InvalidInput naming it', async () => {
    const { db } = await seededDatabase();
    const snaps = kit.activities(db, { pgDumpPath: path.join(kit.tempDir('bin'), 'pg_dump') });
    const f = await failureOf(kit.env().run(snaps.takeSnapshot, {}));
    expect(f.type).toBe('InvalidInput');
    expect(f.message).toContain('pg_dump cannot be started');
  });

  describe('on a large table', () => {
    let big: string;
    beforeAll(async () => {
      big = await kit.freshDatabase('big');
      await kit.appQuery(
        big,
        `CREATE TABLE events AS
           SELECT g AS id, md5(g::text) || md5((g * 7)::text) || md5((g * 13)::text) AS payload
             FROM generate_series(1, 150000) AS g`,
      );
    });

    it('cancelling a dump kills pg_dump (no child left) and leaves no file; the password was never in argv', async () => {
      const snapshotDir = kit.tempDir('snapshots');
      const logs: string[] = [];
      const snaps = kit.activities(big, { snapshotDir, log: (m) => logs.push(m) });
      const { env, run } = kit.env();
      let argv = '';
      let environ = '';
      let pid = 0;
      env.on('heartbeat', (h: SnapshotProgress) => {
        if (pid !== 0 || h.phase !== 'dumping' || h.bytes === 0) return;
        pid = Number(/pid (\d+)/.exec(logs.join('\n'))?.[1]);
        argv = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8');
        environ = fs.readFileSync(`/proc/${pid}/environ`, 'utf8');
        env.cancel();
      });

      await expectCancelled(run(snaps.takeSnapshot, {}));

      expect(pid).toBeGreaterThan(0);
      expect(argv).toContain('--format=custom');
      expect(argv).not.toContain(APP_ROLE.password);
      expect(environ).toContain(`PGPASSWORD=${APP_ROLE.password}`);
      expect(processExists(pid)).toBe(false);
      expect(fs.readdirSync(snapshotDir)).toEqual([]);
      await vi.waitFor(
        async () =>
          expect(
            await cluster.query(
              "SELECT pid FROM pg_stat_activity WHERE application_name = 'aceh-release:pg_dump'",
            ),
          ).toEqual([]),
        { timeout: 10_000, interval: 50 },
      );
    });

    it('cancelling a restore kills pg_restore and leaves the database as it was', async () => {
      const snaps = kit.activities(big);
      const snap = await kit.env().run(snaps.takeSnapshot, {});
      await kit.appQuery(big, 'DELETE FROM events WHERE id > 1000');
      const { env, run } = kit.env();
      const logs = kit.logs;
      const from = logs.length;
      env.on('heartbeat', (h: SnapshotProgress) => {
        if (h.phase === 'restoring') env.cancel();
      });

      await expectCancelled(run(snaps.restoreSnapshot, { snapshot: snap }));

      const pid = Number(/pg_restore .* \(pid (\d+)\)/.exec(logs.slice(from).join('\n'))?.[1]);
      expect(pid).toBeGreaterThan(0);
      expect(processExists(pid)).toBe(false);
      await vi.waitFor(
        async () =>
          expect(
            await cluster.query(
              "SELECT pid FROM pg_stat_activity WHERE application_name = 'aceh-release:pg_restore'",
            ),
          ).toEqual([]),
        { timeout: 10_000, interval: 50 },
      );
      expect(await kit.query(big, 'SELECT count(*)::int AS n FROM events')).toEqual([{ n: 1000 }]);
    });
  });
});
