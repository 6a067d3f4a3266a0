/**
 * Shared helpers of the dev-server conformance suite.
 *
 * `createEnv` starts the embedded server through the stock TestWorkflowEnvironment, exactly as any SDK user
 * would start the Temporal test server or CLI dev server: `createTimeSkipping` (test-server command line) or
 * `createLocal` (`server start-dev` command line), both with `executable: { type: 'existing-path' }`.
 * With TEMPORAL_ADDRESS set, real-time tests run against that server instead, unchanged.
 */
import fs from 'node:fs';
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import type { WorkflowHandle } from '@temporalio/client';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker, bundleWorkflowCode, type WorkflowBundleWithSourceMap } from '@temporalio/worker';
import { temporal } from '@temporalio/proto';
import type { SearchAttributeKey, SearchAttributeType } from '@temporalio/common/lib/search-attributes';

export const DEVSERVER_EXECUTABLE = path.resolve(__dirname, '../../bin/temporal-devserver');
export const REFERENCE_HISTORIES = path.join(__dirname, 'reference-histories');

/** True when the real-time tests target an external Temporal server. */
export const externalAddress = process.env['TEMPORAL_ADDRESS'];

export function uid(prefix: string): string {
  return `${prefix}-${randomUUID().slice(0, 8)}`;
}

/** Time-skipping environment on the embedded server (test-server command line). */
export function createTimeSkippingEnv(): Promise<TestWorkflowEnvironment> {
  return TestWorkflowEnvironment.createTimeSkipping({
    server: { executable: { type: 'existing-path', path: DEVSERVER_EXECUTABLE } },
  });
}

/**
 * Real-time environment: the embedded server through `createLocal` (Temporal CLI command line), or the
 * server at TEMPORAL_ADDRESS when set. `searchAttributes` are keys as `defineSearchAttributeKey` makes them
 * (`{ name, type: 'KEYWORD' }`); they are registered only on the embedded server.
 */
export function createRealTimeEnv(
  searchAttributes: SearchAttributeKey<SearchAttributeType>[] = [],
): Promise<TestWorkflowEnvironment> {
  if (externalAddress) {
    return TestWorkflowEnvironment.createFromExistingServer({
      address: externalAddress,
      namespace: process.env['TEMPORAL_NAMESPACE'] ?? 'default',
    });
  }
  return TestWorkflowEnvironment.createLocal({
    server: {
      executable: { type: 'existing-path', path: DEVSERVER_EXECUTABLE },
      // @temporalio/testing turns each key into `--search-attribute Name=Type` (Type as `Keyword`, `Int`, ...).
      searchAttributes,
    },
  });
}

const bundles = new Map<string, Promise<WorkflowBundleWithSourceMap>>();
/** Bundles a workflow module once per test file. */
export function bundle(workflowsFile: string): Promise<WorkflowBundleWithSourceMap> {
  let b = bundles.get(workflowsFile);
  if (!b) {
    b = bundleWorkflowCode({ workflowsPath: workflowsFile, logger: quietLogger });
    bundles.set(workflowsFile, b);
  }
  return b;
}

const quietLogger = {
  log: () => undefined,
  trace: () => undefined,
  debug: () => undefined,
  info: () => undefined,
  warn: () => undefined,
  error: (message: string) => console.error(message),
};

export type History = temporal.api.history.v1.IHistory;

/** `EVENT_TYPE_WORKFLOW_TASK_SCHEDULED` or `WorkflowTaskScheduled` or a number -> `WorkflowTaskScheduled`. */
export function eventTypeName(type: unknown): string {
  if (typeof type === 'number') return eventTypeName(temporal.api.enums.v1.EventType[type]);
  const s = String(type);
  if (!s.startsWith('EVENT_TYPE_')) return s;
  return s
    .replace(/^EVENT_TYPE_/, '')
    .toLowerCase()
    .split('_')
    .map((w) => w.charAt(0).toUpperCase() + w.slice(1))
    .join('');
}

export function eventTypes(history: History): string[] {
  return (history.events ?? []).map((e) => eventTypeName(e.eventType));
}

export async function historyOf(handle: WorkflowHandle): Promise<History> {
  return await handle.fetchHistory();
}

/** Event-type names of a committed real-server history (either enum spelling, array-wrapped or not). */
export function referenceEventTypes(file: string): string[] {
  const raw = JSON.parse(fs.readFileSync(path.join(REFERENCE_HISTORIES, file), 'utf8')) as unknown;
  const history = (Array.isArray(raw) ? raw[0] : raw) as { events: { eventType: string }[] };
  return history.events.map((e) => eventTypeName(e.eventType));
}

/** Replays a history produced by the server with the same workflow code; throws on nondeterminism. */
export async function replay(history: History, workflowsFile: string, workflowId = 'replay'): Promise<void> {
  await Worker.runReplayHistory({ workflowBundle: await bundle(workflowsFile) }, history, workflowId);
}

/** Runs `fn` with a worker polling a fresh task queue of `env`, stopping the worker when `fn` settles. */
export async function runWithWorker<T>(
  env: TestWorkflowEnvironment,
  options: { workflowsFile: string; activities: object; queuePrefix: string },
  fn: (taskQueue: string) => Promise<T>,
): Promise<T> {
  const taskQueue = uid(options.queuePrefix);
  const worker = await Worker.create({
    connection: env.nativeConnection,
    taskQueue,
    workflowBundle: await bundle(options.workflowsFile),
    activities: options.activities,
  });
  return await worker.runUntil(() => fn(taskQueue));
}

/** Polls `probe` until it returns a truthy value (state driven by the server, not by time), bounded. */
export async function waitFor<T>(
  probe: () => Promise<T | undefined | false>,
  what: string,
  timeoutMs = 15_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}
