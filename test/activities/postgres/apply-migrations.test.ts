import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { PostgresCluster } from '../../../src/sandbox/postgres-cluster';
import { startPostgresCluster } from '../../../src/sandbox/postgres-cluster';
import { APP_ROLE, PostgresTestKit, expectCancelled, failureOf } from './postgres-test-kit';

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

const sha256 = (text: string) => crypto.createHash('sha256').update(text).digest('hex');

/** Each file records that it ran, so running twice would show. */
const ran = (name: string, extra = '') => `${extra}\nINSERT INTO ran (name) VALUES ('${name}');\n`;

const baseFiles = {
  '0_base.sql': 'CREATE TABLE ran (seq serial PRIMARY KEY, name text NOT NULL);\n' + ran('0_base'),
  // Lexical, not numeric: 10_ sorts before 9_ (and 9_seed needs the table of 10_orders).
  '10_orders.sql': ran('10_orders', 'CREATE TABLE orders (id int PRIMARY KEY, total numeric NOT NULL);'),
  '9_seed.sql': ran('9_seed', 'INSERT INTO orders VALUES (1, 9.5), (2, 12);'),
};

describe('applyMigrations', () => {
  it('applies every file once, in lexical order, each recorded with checksum and workflow; a re-run is a no-op', async () => {
    const db = await kit.freshDatabase('mig');
    const dir = kit.writeMigrations({ ...baseFiles, 'README.md': 'not a migration' });
    const acts = kit.activities(db, { migrationsDir: dir });
    const { run, heartbeats, workflowId } = kit.env();

    const result = await run(acts.applyMigrations, {});
    // Lexical order: "0_base.sql" < "10_orders.sql" < "9_seed.sql".
    expect(result).toEqual({
      applied: ['0_base.sql', '10_orders.sql', '9_seed.sql'],
      skipped: [],
      pending: [],
    });
    expect(await kit.query(db, 'SELECT name FROM ran ORDER BY seq')).toEqual([
      { name: '0_base' },
      { name: '10_orders' },
      { name: '9_seed' },
    ]);
    const recorded = await kit.query<{
      name: string;
      checksum: string;
      applied_by: string;
      applied_at: Date;
    }>(db, 'SELECT name, checksum, applied_by, applied_at FROM internal.schema_migrations ORDER BY name');
    expect(recorded.map((r) => [r.name, r.checksum, r.applied_by])).toEqual(
      Object.entries(baseFiles)
        .sort(([a], [b]) => (a < b ? -1 : 1))
        .map(([name, sql]) => [name, sha256(sql), workflowId]),
    );
    expect(recorded.every((r) => r.applied_at instanceof Date)).toBe(true);
    // A heartbeat after each file, with the files applied so far.
    expect(heartbeats).toEqual([
      { phase: 'applying', applied: ['0_base.sql'] },
      { phase: 'applying', applied: ['0_base.sql', '10_orders.sql'] },
      { phase: 'applying', applied: ['0_base.sql', '10_orders.sql', '9_seed.sql'] },
    ]);

    const again = await kit.env().run(acts.applyMigrations, {});
    expect(again).toEqual({
      applied: [],
      skipped: ['0_base.sql', '10_orders.sql', '9_seed.sql'],
      pending: [],
    });
    expect(await kit.query(db, 'SELECT count(*)::int AS n FROM ran')).toEqual([{ n: 3 }]);
  });

  it('applies only the new files of the next release', async () => {
    const db = await kit.freshDatabase('mig');
    const dir = kit.writeMigrations(baseFiles);
    const acts = kit.activities(db, { migrationsDir: dir });
    await kit.env().run(acts.applyMigrations, {});
    kit.writeMigrations({ '3_more.sql': ran('3_more', 'ALTER TABLE orders ADD COLUMN note text;') }, dir);
    const result = await kit.env().run(acts.applyMigrations, {});
    expect(result.applied).toEqual(['3_more.sql']);
    expect(result.skipped).toEqual(['0_base.sql', '10_orders.sql', '9_seed.sql']);
  });

  it('dry run lists the pending files and applies nothing', async () => {
    const db = await kit.freshDatabase('mig');
    const acts = kit.activities(db, { migrationsDir: kit.writeMigrations(baseFiles) });
    const result = await kit.env().run(acts.applyMigrations, { dryRun: true });
    expect(result).toEqual({
      applied: [],
      skipped: [],
      pending: ['0_base.sql', '10_orders.sql', '9_seed.sql'],
    });
    expect(await kit.query(db, "SELECT to_regclass('ran') AS t")).toEqual([{ t: null }]);
  });

  it('two concurrent runs apply each file exactly once (advisory lock, check-then-act)', async () => {
    const db = await kit.freshDatabase('mig');
    const files: Record<string, string> = {
      '1_base.sql': 'CREATE TABLE ran (seq serial PRIMARY KEY, name text NOT NULL);\n' + ran('1_base'),
    };
    for (let i = 2; i <= 6; i++) files[`${i}_step.sql`] = ran(`${i}_step`, 'SELECT pg_sleep(0.05);');
    const acts = kit.activities(db, { migrationsDir: kit.writeMigrations(files) });
    const a = kit.env();
    const b = kit.env();

    const [ra, rb] = await Promise.all([a.run(acts.applyMigrations, {}), b.run(acts.applyMigrations, {})]);

    const all = Object.keys(files).sort();
    expect([...ra.applied, ...rb.applied].sort()).toEqual(all);
    expect(ra.applied.filter((f) => rb.applied.includes(f))).toEqual([]);
    expect([...ra.applied, ...ra.skipped].sort()).toEqual(all);
    expect([...rb.applied, ...rb.skipped].sort()).toEqual(all);
    const counts = await kit.query<{ name: string; n: number }>(
      db,
      'SELECT name, count(*)::int AS n FROM ran GROUP BY name ORDER BY name',
    );
    expect(counts.every((c) => c.n === 1)).toBe(true);
    expect(counts).toHaveLength(all.length);
    // The run that lost the race waited for the lock, heartbeating while it did.
    expect([...a.heartbeats, ...b.heartbeats]).toContainEqual({ phase: 'waiting-for-lock', applied: [] });
  });

  it('refuses (PolicyViolation) when an applied file changed, and applies nothing', async () => {
    const db = await kit.freshDatabase('mig');
    const dir = kit.writeMigrations(baseFiles);
    const acts = kit.activities(db, { migrationsDir: dir });
    await kit.env().run(acts.applyMigrations, {});
    fs.appendFileSync(path.join(dir, '10_orders.sql'), '-- edited after release\n');
    kit.writeMigrations({ '3_more.sql': ran('3_more') }, dir);

    const f = await failureOf(kit.env().run(acts.applyMigrations, {}));
    expect(f.type).toBe('PolicyViolation');
    expect(f.nonRetryable).toBe(true);
    expect(f.message).toContain('10_orders.sql');
    expect(f.details?.[0]).toEqual({ changed: ['10_orders.sql'] });
    expect(await kit.query(db, "SELECT count(*)::int AS n FROM ran WHERE name = '3_more'")).toEqual([
      { n: 0 },
    ]);
  });

  it('a failing file is rolled back alone and reported with its name, line and the PostgreSQL message', async () => {
    const db = await kit.freshDatabase('mig');
    const dir = kit.writeMigrations({
      '1_ok.sql': 'CREATE TABLE ran (seq serial PRIMARY KEY, name text NOT NULL);\n' + ran('1_ok'),
      '2_bad.sql':
        'CREATE TABLE half (id int);\nINSERT INTO half VALUES (1);\nSELECT * FROM no_such_table;\n',
      '3_later.sql': ran('3_later'),
    });
    const acts = kit.activities(db, { migrationsDir: dir });
    const { run, heartbeats } = kit.env();

    const f = await failureOf(run(acts.applyMigrations, {}));
    expect(f.type).toBe('OperationFailed');
    expect(f.nonRetryable).toBe(true);
    expect(f.message).toContain('migration 2_bad.sql failed at line 3');
    expect(f.message).toContain('relation "no_such_table" does not exist');
    expect(f.details?.[0]).toMatchObject({ file: '2_bad.sql', line: 3, sqlState: '42P01' });
    // 1 stays applied; 2 left nothing behind (its first statements were rolled back); 3 never ran.
    expect(heartbeats).toEqual([{ phase: 'applying', applied: ['1_ok.sql'] }]);
    expect(await kit.query(db, 'SELECT name FROM internal.schema_migrations')).toEqual([
      { name: '1_ok.sql' },
    ]);
    expect(await kit.query(db, "SELECT to_regclass('half') AS t")).toEqual([{ t: null }]);
    expect(await kit.query(db, 'SELECT name FROM ran ORDER BY seq')).toEqual([{ name: '1_ok' }]);

    // The failed file was never applied, so it may still be fixed; the next run goes on from there.
    kit.writeMigrations({ '2_bad.sql': 'CREATE TABLE half (id int);\n' }, dir);
    const result = await kit.env().run(acts.applyMigrations, {});
    expect(result).toEqual({ applied: ['2_bad.sql', '3_later.sql'], skipped: ['1_ok.sql'], pending: [] });
  });

  it('a connection killed in the middle of a file is retryable (UpstreamUnavailable) and records nothing', async () => {
    const db = await kit.freshDatabase('mig');
    const acts = kit.activities(db, {
      migrationsDir: kit.writeMigrations({
        '1_slow.sql': 'CREATE TABLE slow (id int);\nSELECT pg_sleep(30);\n',
      }),
    });
    // The failure is observed as soon as it happens (it arrives while the test is still awaiting the kill).
    const outcome = failureOf(kit.env().run(acts.applyMigrations, {}));
    await vi.waitFor(
      async () => {
        const rows = await kit.query(
          db,
          "SELECT pid FROM pg_stat_activity WHERE query LIKE '%pg_sleep(30)%' AND pid <> pg_backend_pid()",
        );
        expect(rows).toHaveLength(1);
      },
      { timeout: 10_000, interval: 50 },
    );
    await kit.query(
      db,
      "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query LIKE '%pg_sleep(30)%' AND pid <> pg_backend_pid()",
    );
    const f = await outcome;
    expect(f.type).toBe('UpstreamUnavailable');
    expect(f.nonRetryable).toBe(false);
    expect(f.message).toContain('1_slow.sql');
    expect(await kit.query(db, "SELECT to_regclass('slow') AS t")).toEqual([{ t: null }]);
    expect(await kit.query(db, 'SELECT count(*)::int AS n FROM internal.schema_migrations')).toEqual([
      { n: 0 },
    ]);
  });

  it('a file that runs long heartbeats while it runs, naming itself', async () => {
    const db = await kit.freshDatabase('mig');
    const dir = kit.writeMigrations({
      '1_fast.sql': 'CREATE TABLE fast (id int);\n',
      '2_slow.sql': 'CREATE TABLE slow (id int);\nSELECT pg_sleep(0.5);\n',
    });
    const acts = kit.activities(db, { migrationsDir: dir, migrationHeartbeatMs: 50 });
    const { run, heartbeats } = kit.env();
    await run(acts.applyMigrations, {});
    const whileRunning = heartbeats.filter((h) => (h as { running?: string }).running === '2_slow.sql') as {
      applied: string[];
      runningForMs: number;
    }[];
    expect(whileRunning.length).toBeGreaterThanOrEqual(2);
    expect(whileRunning.every((h) => h.applied.join() === '1_fast.sql')).toBe(true);
    const times = whileRunning.map((h) => h.runningForMs);
    expect([...times].sort((a, b) => a - b)).toEqual(times);
    expect(times[times.length - 1]).toBeGreaterThan(times[0]!);
    expect(heartbeats[heartbeats.length - 1]).toEqual({
      phase: 'applying',
      applied: ['1_fast.sql', '2_slow.sql'],
    });
  });

  it('cancellation stops the running statement, rolls the file back and releases the lock', async () => {
    const db = await kit.freshDatabase('mig');
    const dir = kit.writeMigrations({
      '1_fast.sql': 'CREATE TABLE fast (id int);\n',
      '2_slow.sql': 'CREATE TABLE slow (id int);\nSELECT pg_sleep(30);\n',
    });
    const acts = kit.activities(db, { migrationsDir: dir });
    const { env, run } = kit.env();
    const running = run(acts.applyMigrations, {});
    await vi.waitFor(
      async () => {
        const rows = await kit.query(
          db,
          "SELECT 1 FROM pg_stat_activity WHERE query LIKE '%pg_sleep(30)%' AND pid <> pg_backend_pid()",
        );
        expect(rows).toHaveLength(1);
      },
      { timeout: 10_000, interval: 50 },
    );
    env.cancel();
    await expectCancelled(running);
    expect(await kit.query(db, 'SELECT name FROM internal.schema_migrations')).toEqual([
      { name: '1_fast.sql' },
    ]);
    expect(await kit.query(db, "SELECT to_regclass('slow') AS t")).toEqual([{ t: null }]);
    // No statement left running on the server, and the lock is free for the next run.
    await vi.waitFor(
      async () => {
        const rows = await kit.query(
          db,
          "SELECT 1 FROM pg_stat_activity WHERE application_name = 'aceh-release'",
        );
        expect(rows).toHaveLength(0);
      },
      { timeout: 10_000, interval: 50 },
    );
    kit.writeMigrations({ '2_slow.sql': 'CREATE TABLE slow (id int);\n' }, dir);
    const result = await kit.env().run(acts.applyMigrations, {});
    expect(result.applied).toEqual(['2_slow.sql']);
  });

  it('an unreadable migrations directory is InvalidInput', async () => {
    const db = await kit.freshDatabase('mig');
    const acts = kit.activities(db, { migrationsDir: path.join(kit.tempDir('none'), 'missing') });
    const f = await failureOf(kit.env().run(acts.applyMigrations, {}));
    expect(f.type).toBe('InvalidInput');
    expect(f.nonRetryable).toBe(true);
  });

  it('an invalid input is InvalidInput', async () => {
    const db = await kit.freshDatabase('mig');
    const acts = kit.activities(db);
    const f = await failureOf(kit.env().run(acts.applyMigrations, { dryRun: 'yes' } as never));
    expect(f.type).toBe('InvalidInput');
  });

  it('a wrong password is Unauthorized, and no message contains it', async () => {
    const db = await kit.freshDatabase('mig');
    const wrong = 'Wrong-Passw0rd-4-test';
    const logs: string[] = [];
    const acts = kit.activities(db, {
      migrationsDir: kit.writeMigrations(baseFiles),
      connection: {
        host: cluster.host,
        port: cluster.port,
        database: db,
        user: APP_ROLE.user,
        password: wrong,
      },
      log: (m) => logs.push(m),
    });
    const f = await failureOf(kit.env().run(acts.applyMigrations, {}));
    expect(f.type).toBe('Unauthorized');
    expect(f.nonRetryable).toBe(true);
    expect(f.message).toContain('password authentication failed');
    expect(JSON.stringify([f.message, f.details, f.stack, logs])).not.toContain(wrong);
  });

  it('a server that is down is UpstreamUnavailable and retryable', async () => {
    const db = await kit.freshDatabase('mig');
    const acts = kit.activities(db, {
      migrationsDir: kit.writeMigrations(baseFiles),
      connectionString: `postgres://${APP_ROLE.user}:${encodeURIComponent(APP_ROLE.password)}@127.0.0.1:1/${db}`,
      connection: undefined,
    });
    const f = await failureOf(kit.env().run(acts.applyMigrations, {}));
    expect(f.type).toBe('UpstreamUnavailable');
    expect(f.nonRetryable).toBe(false);
    expect(f.message).toContain('ECONNREFUSED');
    expect(f.message).not.toContain(APP_ROLE.password);
  });

  it('takes the connection from a connection string too', async () => {
    const db = await kit.freshDatabase('mig');
    const acts = kit.activities(db, {
      migrationsDir: kit.writeMigrations(baseFiles),
      connectionString: `postgres://${APP_ROLE.user}:${encodeURIComponent(APP_ROLE.password)}@${cluster.host}:${cluster.port}/${db}`,
      connection: undefined,
    });
    const result = await kit.env().run(acts.applyMigrations, {});
    expect(result.applied).toHaveLength(3);
  });
});
