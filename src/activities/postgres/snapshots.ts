/**
 * `takeSnapshot` and its compensation `restoreSnapshot` (B1, R2): logical snapshots of the database with
 * `pg_dump -Fc`, restored with `pg_restore --clean --if-exists --single-transaction`.
 */
import crypto from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { FailureType, failure } from '../../errors';
import { cancellationSignal, heartbeat, idempotencyKey } from '../activity-support';
import { AUDIT_SCHEMA, AUDIT_TABLE } from './append-audit-record';
import { classifyPostgresError, classifyToolFailure } from './classify-postgres-failure';
import type { ConnectionSettings } from './postgres-connection';
import { openConnection, throwIfCancelled, toolConnectionArgs, toolEnvironment } from './postgres-connection';
import type {
  RestoreSnapshotResult,
  SnapshotProgress,
  SnapshotRecord,
  TakeSnapshotResult,
} from './postgres-schemas';
import { RestoreSnapshotInput, TakeSnapshotInput } from './postgres-schemas';
import { parseActivityInput as parseInput } from '../activity-support';
import { runPgTool } from './run-pg-tool';

export interface SnapshotDependencies {
  settings: ConnectionSettings;
  pgDumpPath: string;
  pgRestorePath: string;
  snapshotDir: string;
  /** Only these schemas are dumped (`--schema`); all of them when empty. */
  dumpSchemas: string[];
  /** Minimum time between two progress heartbeats while streaming. */
  progressIntervalMs: number;
  killGraceMs: number;
  clock: () => number;
  log: (message: string) => void;
}

/** What is written next to each snapshot, so a replay can prove the file complete and knows its time. */
interface SnapshotMeta {
  sizeBytes: number;
  sha256: string;
  takenAt: string;
  database: string;
}

function safePart(text: string): string {
  return text.replace(/[^A-Za-z0-9._-]+/g, '_').slice(0, 80);
}

/** A file name that only this idempotency key maps to (the hash keeps sanitised keys apart). */
function snapshotBaseName(database: string, key: string): string {
  const hash = crypto.createHash('sha256').update(key).digest('hex').slice(0, 16);
  return `${safePart(database)}--${safePart(key)}-${hash}`;
}

async function sha256File(file: string, onBytes?: (bytes: number) => void): Promise<string> {
  const hash = crypto.createHash('sha256');
  let bytes = 0;
  await pipeline(
    createReadStream(file),
    new Transform({
      transform(chunk: Buffer, _enc, done) {
        hash.update(chunk);
        bytes += chunk.length;
        onBytes?.(bytes);
        done();
      },
    }),
  );
  return hash.digest('hex');
}

async function exists(file: string): Promise<boolean> {
  return fs.stat(file).then(
    () => true,
    () => false,
  );
}

/** A progress heartbeat at most every `intervalMs`, and always when forced. */
function throttledHeartbeat(intervalMs: number) {
  let last = 0;
  return (progress: SnapshotProgress, force = false) => {
    const now = Date.now();
    if (!force && now - last < intervalMs) return;
    last = now;
    heartbeat(progress);
  };
}

const escapeRegExp = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
const AUDIT_SCHEMA_ENTRY = new RegExp(`^\\d+; \\d+ \\d+ SCHEMA - ${escapeRegExp(AUDIT_SCHEMA)} `);
const AUDIT_OBJECT_ENTRY = new RegExp(
  `^\\d+; \\d+ \\d+ [A-Z][A-Z ]*? ${escapeRegExp(AUDIT_SCHEMA)} (?:\\S+ )*?${escapeRegExp(AUDIT_TABLE)}\\w*(?:\\([^)]*\\))? `,
);

/**
 * True for the TOC entries of the append-only audit log and of its schema: a restore must not roll the
 * audit trail back (H4), and dropping the schema would fail while the kept table is in it.
 */
export function isPreservedEntry(line: string): boolean {
  return AUDIT_SCHEMA_ENTRY.test(line) || AUDIT_OBJECT_ENTRY.test(line);
}

/**
 * Builds `takeSnapshot` and `restoreSnapshot` over one database; their guarantees (idempotency, failures,
 * cancellation) are listed on `createPostgresActivities`, which is how the worker builds them.
 */
export function makeSnapshotActivities(deps: SnapshotDependencies) {
  const { settings, log } = deps;
  const redactor = settings.redactor;
  const conn = settings.connection;
  const snapshotDir = path.resolve(deps.snapshotDir);

  async function listArchive(file: string, signal: AbortSignal): Promise<{ ok: boolean; toc: string }> {
    const exit = await runPgTool({
      tool: 'pg_restore',
      command: deps.pgRestorePath,
      args: ['--list', file],
      env: toolEnvironment(settings, 'pg_restore'),
      signal,
      killGraceMs: deps.killGraceMs,
    });
    return { ok: exit.code === 0, toc: exit.stdout };
  }

  /** A snapshot for `base` that is complete: final name, metadata matching size and sha256, readable TOC. */
  async function completeSnapshot(base: string, signal: AbortSignal): Promise<SnapshotRecord | undefined> {
    const file = path.join(snapshotDir, `${base}.dump`);
    const metaFile = path.join(snapshotDir, `${base}.json`);
    if (!(await exists(file))) return undefined;
    try {
      const meta = JSON.parse(await fs.readFile(metaFile, 'utf8')) as SnapshotMeta;
      const stat = await fs.stat(file);
      if (stat.size !== meta.sizeBytes) return undefined;
      if ((await sha256File(file)) !== meta.sha256) return undefined;
      if (!(await listArchive(file, signal)).ok) return undefined;
      return { path: file, sizeBytes: meta.sizeBytes, takenAt: meta.takenAt, sha256: meta.sha256 };
    } catch (err) {
      throwIfCancelled(signal);
      log(`takeSnapshot: existing ${base}.dump is not usable (${(err as Error).message}); dumping again`);
      return undefined;
    }
  }

  async function auditLogPresent(): Promise<boolean> {
    const c = await openConnection(settings, `connect to restore ${conn.database}`);
    try {
      const rows = await c.client.query<{ present: boolean }>(
        'SELECT to_regclass($1) IS NOT NULL AS present',
        [`${AUDIT_SCHEMA}.${AUDIT_TABLE}`],
      );
      return rows.rows[0]?.present === true;
    } catch (err) {
      throw classifyPostgresError(err, { operation: `look for the audit log in ${conn.database}`, redactor });
    } finally {
      await c.close();
    }
  }

  /**
   * Takes a logical snapshot of the configured database with `pg_dump -Fc`; see `createPostgresActivities`.
   */
  async function takeSnapshot(input: TakeSnapshotInput = {}): Promise<TakeSnapshotResult> {
    const parsed = parseInput(TakeSnapshotInput, input, 'takeSnapshot');
    const signal = cancellationSignal();
    const key = parsed.idempotencyKey ?? idempotencyKey();
    const base = snapshotBaseName(conn.database, key);
    const file = path.join(snapshotDir, `${base}.dump`);
    const metaFile = path.join(snapshotDir, `${base}.json`);
    const partial = `${file}.partial`;
    await fs.mkdir(snapshotDir, { recursive: true, mode: 0o700 });

    const existing = await completeSnapshot(base, signal);
    if (existing) {
      log(`takeSnapshot: ${path.basename(file)} already complete; returning it`);
      heartbeat({ phase: 'done', bytes: existing.sizeBytes } satisfies SnapshotProgress);
      return { ...existing, reused: true };
    }
    await Promise.all([file, metaFile, partial].map((f) => fs.rm(f, { force: true })));

    const takenAt = new Date(deps.clock()).toISOString();
    const hash = crypto.createHash('sha256');
    let bytes = 0;
    const beat = throttledHeartbeat(deps.progressIntervalMs);
    const counter = new Transform({
      transform(chunk: Buffer, _enc, done) {
        hash.update(chunk);
        bytes += chunk.length;
        beat({ phase: 'dumping', bytes });
        done(null, chunk);
      },
    });
    const out = createWriteStream(partial, { mode: 0o600 });
    const args = [
      ...toolConnectionArgs(conn),
      '--format=custom',
      ...deps.dumpSchemas.map((s) => `--schema=${s}`),
    ];
    // Drain the counter into the file while pg_dump runs, or its output would back up and stall it.
    const written = pipeline(counter, out).then(
      () => undefined,
      (err: unknown) => err as Error,
    );
    let exit;
    try {
      exit = await runPgTool({
        tool: 'pg_dump',
        command: deps.pgDumpPath,
        args,
        env: toolEnvironment(settings, 'pg_dump'),
        signal,
        stdout: counter,
        killGraceMs: deps.killGraceMs,
        onSpawn: (pid) => log(`takeSnapshot: pg_dump of ${conn.database} started (pid ${pid})`),
      });
    } catch (err) {
      counter.destroy();
      await written;
      await fs.rm(partial, { force: true });
      throw err;
    }
    const writeError = await written;
    if (writeError) {
      await fs.rm(partial, { force: true });
      throw failure(
        FailureType.OperationFailed,
        `the snapshot ${path.basename(file)} could not be written to ${snapshotDir}: ${writeError.message}`,
        { details: { path: file } },
      );
    }
    if (exit.code !== 0) {
      await fs.rm(partial, { force: true });
      throw classifyToolFailure('pg_dump', exit, exit.stderr, {
        operation: `pg_dump of ${conn.database}`,
        redactor,
      });
    }
    const handle = await fs.open(partial, 'r+');
    try {
      await handle.sync();
    } finally {
      await handle.close();
    }
    const sha256 = hash.digest('hex');
    const meta: SnapshotMeta = { sizeBytes: bytes, sha256, takenAt, database: conn.database };
    await fs.writeFile(`${metaFile}.partial`, JSON.stringify(meta, null, 2), { mode: 0o600 });
    await fs.rename(`${metaFile}.partial`, metaFile);
    // The final name appears last: a file under it is complete.
    await fs.rename(partial, file);
    beat({ phase: 'done', bytes }, true);
    log(`takeSnapshot: ${path.basename(file)} written (${bytes} bytes)`);
    return { path: file, sizeBytes: bytes, takenAt, sha256, reused: false };
  }

  /** Restores a snapshot into the configured database; see `createPostgresActivities`. */
  async function restoreSnapshot(input: RestoreSnapshotInput): Promise<RestoreSnapshotResult> {
    const { snapshot, maxAgeMs, confirmStale } = parseInput(RestoreSnapshotInput, input, 'restoreSnapshot');
    const signal = cancellationSignal();
    const file = path.resolve(snapshot.path);
    const relative = path.relative(snapshotDir, file);
    if (relative.startsWith('..') || path.isAbsolute(relative) || relative === '') {
      throw failure(
        FailureType.InvalidInput,
        `restoreSnapshot: ${snapshot.path} is not inside the snapshot directory ${snapshotDir}`,
        { details: { path: snapshot.path, snapshotDir } },
      );
    }
    const ageMs = Math.max(0, deps.clock() - Date.parse(snapshot.takenAt));
    const stale = ageMs > maxAgeMs;
    if (stale && !confirmStale) {
      throw failure(
        FailureType.PolicyViolation,
        `the snapshot ${path.basename(file)} is ${Math.round(ageMs / 60_000)} min old, older than the ` +
          `recovery point objective of ${Math.round(maxAgeMs / 60_000)} min; restoring it loses more data ` +
          'than allowed: take a fresh snapshot, or restore with confirmStale: true after a human agreed',
        { details: { path: file, ageMs, maxAgeMs } },
      );
    }
    const stat = await fs.stat(file).catch(() => undefined);
    if (!stat) {
      throw failure(FailureType.NotFound, `the snapshot ${file} does not exist (any more)`, {
        details: { path: file },
      });
    }
    const beat = throttledHeartbeat(deps.progressIntervalMs);
    const actual = await sha256File(file, (bytes) => beat({ phase: 'verifying', bytes }));
    throwIfCancelled(signal);
    if (actual !== snapshot.sha256) {
      throw failure(
        FailureType.ContractViolation,
        `the snapshot ${path.basename(file)} is corrupt: its sha256 is ${actual}, recorded ${snapshot.sha256}; ` +
          'nothing was restored; pick another snapshot',
        { details: { path: file, expected: snapshot.sha256, actual } },
      );
    }
    const listing = await listArchive(file, signal);
    if (!listing.ok) {
      throw failure(
        FailureType.ContractViolation,
        `the snapshot ${path.basename(file)} is not a readable pg_dump archive; nothing was restored`,
        { details: { path: file } },
      );
    }
    const lines = listing.toc.split('\n');
    // The audit log in the database is kept as it is; where there is none yet (disaster recovery into an
    // empty database), the snapshot's copy of it is restored like everything else.
    const keepAudit = await auditLogPresent();
    const preserved = keepAudit
      ? lines.filter((l) => isPreservedEntry(l)).map((l) => l.replace(/^\d+; \d+ \d+ /, ''))
      : [];
    const workDir = await fs.mkdtemp(path.join(os.tmpdir(), 'aceh-restore-'));
    try {
      const listFile = path.join(workDir, 'restore.list');
      const restoreLines = keepAudit ? lines.filter((l) => !isPreservedEntry(l)) : lines;
      await fs.writeFile(listFile, restoreLines.join('\n'), { mode: 0o600 });
      let items = 0;
      const exit = await runPgTool({
        tool: 'pg_restore',
        command: deps.pgRestorePath,
        args: [
          ...toolConnectionArgs(conn),
          '--clean',
          '--if-exists',
          '--single-transaction',
          '--exit-on-error',
          '--verbose',
          `--use-list=${listFile}`,
          file,
        ],
        env: toolEnvironment(settings, 'pg_restore'),
        signal,
        killGraceMs: deps.killGraceMs,
        onSpawn: (pid) => log(`restoreSnapshot: pg_restore of ${path.basename(file)} started (pid ${pid})`),
        onStderrLine: (line) => {
          if (/^pg_restore: (creating|processing|dropping)/.test(line)) {
            items += 1;
            beat({ phase: 'restoring', bytes: stat.size, items });
          }
        },
      });
      if (exit.code !== 0) {
        throw classifyToolFailure('pg_restore', exit, exit.stderr, {
          operation: `pg_restore of ${path.basename(file)} into ${conn.database}`,
          redactor,
        });
      }
      beat({ phase: 'done', bytes: stat.size, items }, true);
      log(`restoreSnapshot: ${path.basename(file)} restored into ${conn.database} (${items} items)`);
      return { path: file, ageMs, stale, preserved };
    } finally {
      await fs.rm(workDir, { recursive: true, force: true });
    }
  }

  return { takeSnapshot, restoreSnapshot };
}
