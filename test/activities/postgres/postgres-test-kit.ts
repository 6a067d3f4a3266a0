/**
 * What the PostgreSQL activity tests share: a throwaway cluster, a fresh database per test, activities
 * built over it, activity environments with unique workflow ids, and a way to catch the failure.
 */
import { ApplicationFailure, CancelledFailure } from '@temporalio/common';
import { MockActivityEnvironment } from '@temporalio/testing';
import { DefaultLogger } from '@temporalio/worker';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { expect } from 'vitest';
import type { PostgresActivitiesOptions } from '../../../src/activities/postgres';
import { createPostgresActivities } from '../../../src/activities/postgres';
import type { PostgresCluster } from '../../../src/sandbox/postgres-cluster';

/** The application role; the password has the characters that break naive URL or shell handling. */
export const APP_ROLE = { user: 'release_app', password: 'S3cret:pw/with?odd@chars' };

export class PostgresTestKit {
  private databases = 0;
  private readonly tempDirs: string[] = [];
  readonly logs: string[] = [];

  constructor(readonly cluster: PostgresCluster) {}

  async freshDatabase(prefix: string): Promise<string> {
    const name = `${prefix}_${++this.databases}`;
    await this.cluster.createDatabase(name, APP_ROLE);
    return name;
  }

  tempDir(prefix: string): string {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), `aceh-${prefix}-`));
    this.tempDirs.push(dir);
    return dir;
  }

  writeMigrations(files: Record<string, string>, dir = this.tempDir('migrations')): string {
    for (const [name, sql] of Object.entries(files)) fs.writeFileSync(path.join(dir, name), sql);
    return dir;
  }

  activities(database: string, overrides: Partial<PostgresActivitiesOptions> = {}) {
    return createPostgresActivities({
      connection: {
        host: this.cluster.host,
        port: this.cluster.port,
        database,
        user: APP_ROLE.user,
        password: APP_ROLE.password,
      },
      migrationsDir: overrides.migrationsDir ?? this.tempDir('migrations'),
      pgDumpPath: this.cluster.tools.pgDump,
      pgRestorePath: this.cluster.tools.pgRestore,
      snapshotDir: overrides.snapshotDir ?? this.tempDir('snapshots'),
      log: (m) => this.logs.push(m),
      lockPollMs: 20,
      progressIntervalMs: 0,
      connectTimeoutMs: 5000,
      ...overrides,
    });
  }

  /** An activity environment of a workflow with a unique id, its heartbeats collected. */
  env(activityId = '1', workflowId = `wf-${crypto.randomUUID()}`) {
    const env = new MockActivityEnvironment(
      { activityId, workflowExecution: { workflowId, runId: crypto.randomUUID() } },
      { logger: new DefaultLogger('ERROR') },
    );
    const heartbeats: unknown[] = [];
    env.on('heartbeat', (d: unknown) => heartbeats.push(d));
    /** `env.run` with the activity's own types (MockActivityEnvironment.run cannot infer the result). */
    const run = <A extends unknown[], R>(fn: (...args: A) => Promise<R>, ...args: A): Promise<R> =>
      env.run<A, R, (...args: A) => Promise<R>>(fn, ...args);
    return { env, run, heartbeats, workflowId };
  }

  query<T extends object = Record<string, unknown>>(database: string, sql: string, params: unknown[] = []) {
    return this.cluster.query<T>(sql, params, database);
  }

  /** Runs SQL as the application role (not the superuser). */
  async appQuery<T extends object = Record<string, unknown>>(
    database: string,
    sql: string,
    params: unknown[] = [],
  ): Promise<T[]> {
    const client = new pg.Client({
      host: this.cluster.host,
      port: this.cluster.port,
      database,
      user: APP_ROLE.user,
      password: APP_ROLE.password,
    });
    client.on('error', () => undefined);
    await client.connect();
    try {
      return (await client.query<T>(sql, params)).rows;
    } finally {
      await client.end();
    }
  }

  cleanup(): void {
    for (const dir of this.tempDirs) fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** The ApplicationFailure a promise rejects with (fails the test if it resolves or throws something else). */
export async function failureOf(promise: Promise<unknown>): Promise<ApplicationFailure> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err, 'expected the activity to fail').toBeInstanceOf(ApplicationFailure);
  return err as ApplicationFailure;
}

/** Asserts a promise rejects with the activity's cancellation. */
export async function expectCancelled(promise: Promise<unknown>): Promise<void> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(CancelledFailure);
}

/** True while a process with this pid exists (zombies included: they would be a leak too). */
export function processExists(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
