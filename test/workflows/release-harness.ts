/**
 * The release workflows end to end: the embedded dev server with time skipping, the real worker with the
 * real activities, pointed at the local sandbox of the platform (spec-checked fakes, a real PostgreSQL, a
 * real git repository, a Traefik file). One harness per test file; each test scripts the fakes it needs.
 */
import path from 'node:path';
import fs from 'node:fs';
import os from 'node:os';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import {
  DefaultLogger,
  Runtime,
  Worker,
  bundleWorkflowCode,
  type WorkflowBundleWithSourceMap,
} from '@temporalio/worker';
import { temporal } from '@temporalio/proto';
import type { WorkflowHandle } from '@temporalio/client';
import { createActivities } from '../../src/activities';
import { TASK_QUEUE } from '../../src/config/temporal-connection';
import type { PlatformConfig } from '../../src/config/platform-config';
import { startSandbox, type Sandbox } from '../../src/sandbox/sandbox';
import { WORKER_TUNING, connectWorker } from '../../src/worker';
import type { ReleaseInput, ReleaseStatus } from '../../src/schemas/release';
import { RELEASE_WORKFLOW_TYPE, releaseWorkflowId, statusQuery } from '../../src/workflows/definitions';
import { DEVSERVER_EXECUTABLE } from '../devserver/helpers';

export const WORKFLOWS = path.resolve(__dirname, '../../src/workflows/index.ts');

let bundled: Promise<WorkflowBundleWithSourceMap> | undefined;
/** The workflow bundle, built once per test file. */
export function workflowBundle(): Promise<WorkflowBundleWithSourceMap> {
  bundled ??= bundleWorkflowCode({ workflowsPath: WORKFLOWS, logger: new DefaultLogger('WARN') });
  return bundled;
}

let runtimeInstalled = false;
function quietRuntime(): void {
  if (runtimeInstalled) return;
  runtimeInstalled = true;
  try {
    Runtime.install({ logger: new DefaultLogger('ERROR') });
  } catch {
    // Installed already by another harness in this process.
  }
}

export interface ReleaseHarness {
  env: TestWorkflowEnvironment;
  sandbox: Sandbox;
  /** Runs `fn` with a worker polling; the worker stops when `fn` settles. */
  withWorker<T>(fn: () => Promise<T>): Promise<T>;
  startRelease(input: Partial<ReleaseInput> & { version: string }): Promise<WorkflowHandle>;
  status(handle: WorkflowHandle): Promise<ReleaseStatus>;
  stop(): Promise<void>;
}

/** Options of the harness: a change to the sandbox's configuration before the worker sees it. */
export interface HarnessOptions {
  configure?: (config: PlatformConfig) => PlatformConfig;
}

export async function startReleaseHarness(options: HarnessOptions = {}): Promise<ReleaseHarness> {
  quietRuntime();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'aceh-release-e2e-'));
  const sandbox = await startSandbox({ dir });
  const env = await TestWorkflowEnvironment.createTimeSkipping({
    server: { executable: { type: 'existing-path', path: DEVSERVER_EXECUTABLE } },
  });
  await env.connection.operatorService.addSearchAttributes({
    namespace: env.namespace ?? 'default',
    searchAttributes: {
      ReleaseVersion: temporal.api.enums.v1.IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD,
      ReleasePhase: temporal.api.enums.v1.IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD,
    },
  });
  const config = options.configure ? options.configure(sandbox.config) : sandbox.config;
  const workflowBundleCode = await workflowBundle();

  const harness: ReleaseHarness = {
    env,
    sandbox,
    async withWorker(fn) {
      // The worker connects as `npm start` does (connectWorker); the environment's own connection is the
      // SDK's default one.
      const connection = await connectWorker({
        address: env.address,
        namespace: env.namespace ?? 'default',
        tls: undefined,
        apiKey: undefined,
      });
      const worker = await Worker.create({
        connection,
        namespace: env.namespace ?? 'default',
        taskQueue: TASK_QUEUE,
        workflowBundle: workflowBundleCode,
        ...WORKER_TUNING,
        activities: createActivities({
          config,
          credentials: sandbox.credentials,
          local: sandbox.local,
          log: () => undefined,
          temporal: { client: env.client, taskQueue: TASK_QUEUE },
        }),
      });
      try {
        return await worker.runUntil(fn);
      } finally {
        await connection.close();
      }
    },
    async startRelease(input) {
      return env.client.workflow.start(RELEASE_WORKFLOW_TYPE, {
        taskQueue: TASK_QUEUE,
        workflowId: releaseWorkflowId(input.version),
        args: [{ commit: sandbox.commit, requestedBy: 'alice', ...input }],
      });
    },
    status(handle) {
      return handle.query(statusQuery);
    },
    async stop() {
      await env.teardown();
      await sandbox.stop();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
  return harness;
}

/**
 * Polls the release's status until `accept` holds (driven by the server, bounded in real time).
 *
 * The status changes only in a workflow task, and every workflow task lengthens the history; so the history
 * length is read first (a call the server answers alone) and the status is queried (a task for the worker,
 * in line with the release's own tasks) only when the history has grown since the last query.
 */
export async function waitForStatus(
  harness: ReleaseHarness,
  handle: WorkflowHandle,
  accept: (s: ReleaseStatus) => boolean,
  what: string,
  timeoutMs = 30_000,
): Promise<ReleaseStatus> {
  const deadline = Date.now() + timeoutMs;
  let last: ReleaseStatus | undefined;
  let queriedAt = -1;
  for (;;) {
    try {
      const { historyLength } = await handle.describe();
      if (historyLength !== queriedAt) {
        last = await harness.status(handle);
        queriedAt = historyLength;
        if (accept(last)) return last;
      }
    } catch (err) {
      // The first workflow task may not have run yet: the query has nothing to answer.
      if (Date.now() > deadline) throw err;
    }
    if (Date.now() > deadline) {
      throw new Error(
        `timed out waiting for ${what}; phase ${last?.phase ?? 'unknown'}, steps: ${JSON.stringify(last?.steps.slice(-3))}`,
      );
    }
    // Lets a second of workflow time pass (timers such as the pause between rolling batches fire) while
    // nothing else skips time: the test server moves its clock only while someone sleeps or awaits a result.
    await harness.env.sleep(1000);
  }
}

export const inPhase = (phase: ReleaseStatus['phase']) => (s: ReleaseStatus) => s.phase === phase;

const History = temporal.api.history.v1.History;

/** A history as plain JSON (enum names, 64-bit numbers and bytes as strings), read back by `historyFromJson`. */
export function historyAsJson(history: temporal.api.history.v1.IHistory): unknown {
  return History.toObject(History.fromObject(history), { enums: String, longs: String, bytes: String });
}

export function historyFromJson(json: unknown): temporal.api.history.v1.History {
  return History.fromObject(json as Record<string, unknown>);
}

/** Where the committed histories of the release paths live (replayed by test/replay). */
export const HISTORIES_DIR = path.resolve(__dirname, '../replay/histories');

/**
 * With RECORD_HISTORIES=1, writes the history of `workflowId` (and of its strategy children) to
 * `test/replay/histories/<name>.json`, to be committed; otherwise does nothing. Run a path again with it
 * set after a deliberate change of workflow code, and keep the old files when old executions must replay.
 */
export async function recordHistory(
  harness: ReleaseHarness,
  workflowId: string,
  name: string,
): Promise<void> {
  if (process.env['RECORD_HISTORIES'] !== '1') return;
  fs.mkdirSync(HISTORIES_DIR, { recursive: true });
  const ids = [
    workflowId,
    ...[
      'staging-rolling',
      'production-blue-green',
      'production-canary',
      'production-shadow',
      'production-rolling',
    ].map((c) => `${workflowId}/${c}`),
  ];
  for (const id of ids) {
    let history;
    try {
      history = await harness.env.client.workflow.getHandle(id).fetchHistory();
    } catch {
      continue;
    }
    const suffix = id === workflowId ? '' : `--${id.slice(workflowId.length + 1)}`;
    // The workflow id goes with it: the code derives ids from it (children, lock requests), so replay needs it.
    const record = { workflowId: id, history: historyAsJson(history) };
    fs.writeFileSync(path.join(HISTORIES_DIR, `${name}${suffix}.json`), `${JSON.stringify(record)}\n`);
  }
}
