/**
 * The environment lock on the embedded dev server, time-skipping: FIFO grants with position updates,
 * withdrawal, holders that vanish, completion when idle, idempotent requests and continue-as-new; and the
 * Temporal activities it relies on.
 */
import path from 'node:path';
import { ApplicationFailure, CancelledFailure } from '@temporalio/common';
import { Client, Connection, WorkflowFailedError, type WorkflowHandle } from '@temporalio/client';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { DefaultLogger, Runtime, Worker, type LogEntry } from '@temporalio/worker';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createTemporalActivities,
  type TemporalActivitiesOptions,
} from '../../src/activities/temporal/temporal-activities';
import {
  DEFAULT_HOLDER_CHECK_INTERVAL_MS,
  acquireEnvironmentLockSignal,
  environmentLockStateQuery,
  environmentLockWorkflowId,
  releaseEnvironmentLockSignal,
  type EnvironmentLockState,
} from '../../src/workflows/environment-lock-workflow';
import { bundle, createTimeSkippingEnv, replay, uid, waitFor } from '../devserver/helpers';
import {
  environmentLockWorkflow,
  lockRequesterStateQuery,
  lockRequesterWorkflow,
  proceedSignal,
  type LockRequesterState,
} from './lock-test-workflows';

const workflowsFile = path.join(__dirname, 'lock-test-workflows.ts');

let env: TestWorkflowEnvironment;
/** Warnings and errors of workflows and workers, to check what the lock logs. */
const logged: LogEntry[] = [];

/** Waits until `count` warnings containing `text` whose metadata has the fields of `meta` were logged. */
async function waitForLogs(text: string, meta: Record<string, unknown>, count = 1): Promise<LogEntry[]> {
  return await waitFor(
    () => {
      const found = logged.filter(
        (e) => e.message.includes(text) && Object.entries(meta).every(([k, v]) => e.meta?.[k] === v),
      );
      return Promise.resolve(found.length >= count && found);
    },
    `${count} log(s) "${text}" with ${JSON.stringify(meta)}`,
  );
}

/** The first warning containing `text` logged by the workflow `workflowId`. */
async function waitForLog(text: string, workflowId: string): Promise<LogEntry> {
  return (await waitForLogs(text, { workflowId }))[0]!;
}

beforeAll(async () => {
  Runtime.install({ logger: new DefaultLogger('WARN', (entry) => logged.push(entry)) });
  [env] = await Promise.all([createTimeSkippingEnv(), bundle(workflowsFile)]);
});
afterAll(async () => {
  await env?.teardown();
});

interface LockTest {
  taskQueue: string;
  /** A fresh environment name, so that every test has its own lock workflow. */
  environment: string;
  activities: ReturnType<typeof createTemporalActivities>;
}

/** Runs `fn` with a worker on a fresh task queue whose Temporal activities start locks on that queue. */
async function withLockWorker<T>(
  fn: (t: LockTest) => Promise<T>,
  environmentLock?: TemporalActivitiesOptions['environmentLock'],
): Promise<T> {
  const taskQueue = uid('lock');
  const activities = createTemporalActivities({ client: env.client, taskQueue, environmentLock });
  const worker = await Worker.create({
    connection: env.nativeConnection,
    taskQueue,
    workflowBundle: await bundle(workflowsFile),
    activities,
  });
  return await worker.runUntil(() => fn({ taskQueue, environment: uid('env'), activities }));
}

function lockHandle(environment: string) {
  return env.client.workflow.getHandle<typeof environmentLockWorkflow>(
    environmentLockWorkflowId(environment),
  );
}

async function lockState(environment: string): Promise<EnvironmentLockState | undefined> {
  try {
    return await lockHandle(environment).query(environmentLockStateQuery);
  } catch {
    return undefined; // not started yet
  }
}

/** Waits until the lock is held by `holder` (a workflow id, or nobody) with exactly `queue` waiting. */
async function waitForLock(
  environment: string,
  holder: string | null,
  queue: string[],
): Promise<EnvironmentLockState> {
  return await waitFor(
    async () => {
      const state = await lockState(environment);
      if (!state) return undefined;
      const same =
        (state.holder?.requesterWorkflowId ?? null) === holder &&
        state.queue.length === queue.length &&
        state.queue.every((w, i) => w.requesterWorkflowId === queue[i] && w.position === i + 1);
      return same && state;
    },
    `lock of ${environment} held by ${holder} with queue [${queue.join(', ')}]`,
  );
}

function startRequester(t: LockTest, name: string, linger = false) {
  return env.client.workflow.start(lockRequesterWorkflow, {
    workflowId: uid(name),
    taskQueue: t.taskQueue,
    args: [{ environment: t.environment, linger }],
  });
}

function requesterState(handle: WorkflowHandle<typeof lockRequesterWorkflow>): Promise<LockRequesterState> {
  return handle.query(lockRequesterStateQuery);
}

/** Waits until the requester has been told `positions`, in that order. */
async function waitForPositions(handle: WorkflowHandle<typeof lockRequesterWorkflow>, positions: number[]) {
  await waitFor(
    async () => {
      const state = await requesterState(handle);
      return JSON.stringify(state.positions) === JSON.stringify(positions);
    },
    `${handle.workflowId} to see positions ${positions.join(',')}`,
  );
}

async function finish(handle: WorkflowHandle<typeof lockRequesterWorkflow>) {
  await handle.signal(proceedSignal);
  return await handle.result();
}

/** The start event of the lock's current run names the run it continued from, if any. */
async function continuedFrom(environment: string): Promise<string> {
  const history = await lockHandle(environment).fetchHistory();
  return history.events?.[0]?.workflowExecutionStartedEventAttributes?.continuedExecutionRunId ?? '';
}

describe('environmentLockWorkflow', () => {
  it('grants three requesters in arrival order; waiters see their positions 1 and 2,1', async () => {
    await withLockWorker(async (t) => {
      const a = await startRequester(t, 'a');
      await waitForLock(t.environment, a.workflowId, []);
      const b = await startRequester(t, 'b');
      await waitForLock(t.environment, a.workflowId, [b.workflowId]);
      const c = await startRequester(t, 'c');
      await waitForLock(t.environment, a.workflowId, [b.workflowId, c.workflowId]);
      await waitForPositions(c, [2]);
      // Nobody but the holder gets in while it holds.
      expect(await requesterState(b)).toMatchObject({ phase: 'waiting', positions: [1] });
      expect(await requesterState(c)).toMatchObject({ phase: 'waiting', positions: [2] });

      const [ra, rb, rc] = [await finish(a), await finish(b), await finish(c)];
      expect(ra.positions).toEqual([]);
      expect(rb.positions).toEqual([1]);
      expect(rc.positions).toEqual([2, 1]);
      expect(rb.acquiredAtMs).toBeGreaterThanOrEqual(ra.releasedAtMs);
      expect(rc.acquiredAtMs).toBeGreaterThanOrEqual(rb.releasedAtMs);
      expect(new Set([ra.requestId, rb.requestId, rc.requestId]).size).toBe(3);
      await lockHandle(t.environment).result();
      // With the default threshold, the lock never continued as new.
      expect(await continuedFrom(t.environment)).toBe('');
      // The code replays its own histories (no nondeterminism in the lock or the requester side).
      for (const handle of [lockHandle(t.environment), a, b, c]) {
        await replay(await handle.fetchHistory(), workflowsFile, handle.workflowId);
      }
    });
  });

  it('releaseEnvironmentLock withdraws a queued request; unknown and malformed ones change nothing', async () => {
    await withLockWorker(async (t) => {
      const a = await startRequester(t, 'a');
      await waitForLock(t.environment, a.workflowId, []);
      const b = await startRequester(t, 'b');
      await waitForLock(t.environment, a.workflowId, [b.workflowId]);
      const c = await startRequester(t, 'c');
      const queued = await waitForLock(t.environment, a.workflowId, [b.workflowId, c.workflowId]);
      const lock = lockHandle(t.environment);

      await lock.signal(releaseEnvironmentLockSignal, {
        requesterWorkflowId: b.workflowId,
        requestId: 'no-such-request',
      });
      await lock.signal(releaseEnvironmentLockSignal, { requestId: queued.queue[0]!.requestId });
      // A matching request id from another workflow does not release it either.
      await lock.signal(releaseEnvironmentLockSignal, {
        requesterWorkflowId: c.workflowId,
        requestId: queued.queue[0]!.requestId,
      });
      await lock.signal(releaseEnvironmentLockSignal, {
        requesterWorkflowId: b.workflowId,
        requestId: queued.queue[0]!.requestId,
      });
      await waitForLock(t.environment, a.workflowId, [c.workflowId]);
      await waitForPositions(c, [2, 1]);
      const invalid = await waitForLog('ignored an invalid releaseEnvironmentLock signal', lock.workflowId);
      expect(invalid.meta?.['issues']).toEqual([
        'requesterWorkflowId: Invalid input: expected string, received undefined',
      ]);

      expect(await requesterState(b)).toMatchObject({ phase: 'waiting', positions: [1] });
      await b.terminate('its request was withdrawn for the test');
      expect((await finish(a)).positions).toEqual([]);
      expect((await finish(c)).positions).toEqual([2, 1]);
      await lock.result();
    });
  });

  it('a terminated holder loses the lock at the next holder check; a live one keeps it', async () => {
    await withLockWorker(async (t) => {
      const a = await startRequester(t, 'a');
      const held = await waitForLock(t.environment, a.workflowId, []);
      const b = await startRequester(t, 'b');
      await waitForLock(t.environment, a.workflowId, [b.workflowId]);

      // Two checks pass while the holder runs: it keeps the lock.
      await env.sleep(2.5 * DEFAULT_HOLDER_CHECK_INTERVAL_MS);
      expect((await lockState(t.environment))?.holder?.requesterWorkflowId).toBe(a.workflowId);
      expect((await requesterState(b)).phase).toBe('waiting');

      await a.terminate('killed mid-hold: no cleanup runs');
      expect((await lockState(t.environment))?.holder?.requesterWorkflowId).toBe(a.workflowId);
      const rb = await finish(b);
      // Granted at the third check, one interval after the second.
      expect(rb.acquiredAtMs - held.holder!.acquiredAtMs).toBeGreaterThanOrEqual(
        3 * DEFAULT_HOLDER_CHECK_INTERVAL_MS,
      );
      expect(rb.acquiredAtMs - held.holder!.acquiredAtMs).toBeLessThan(4 * DEFAULT_HOLDER_CHECK_INTERVAL_MS);
      expect(rb.positions).toEqual([1]);
      const taken = await waitForLog('the lock is taken back', environmentLockWorkflowId(t.environment));
      expect(taken.meta).toMatchObject({ requesterWorkflowId: a.workflowId, holderStatus: 'TERMINATED' });
      await lockHandle(t.environment).result();
    });
  });

  it('drops waiters that are gone when telling them a new position or granting them the lock', async () => {
    await withLockWorker(async (t) => {
      const a = await startRequester(t, 'a');
      await waitForLock(t.environment, a.workflowId, []);
      const b = await startRequester(t, 'b');
      await waitForLock(t.environment, a.workflowId, [b.workflowId]);
      const c = await startRequester(t, 'c');
      await waitForLock(t.environment, a.workflowId, [b.workflowId, c.workflowId]);
      const d = await startRequester(t, 'd');
      const queued = await waitForLock(t.environment, a.workflowId, [
        b.workflowId,
        c.workflowId,
        d.workflowId,
      ]);
      await waitForPositions(d, [3]);
      const lock = lockHandle(t.environment);

      // C closes without withdrawing; it is found out when its position changes.
      await c.terminate('gone while queued');
      await lock.signal(releaseEnvironmentLockSignal, {
        requesterWorkflowId: b.workflowId,
        requestId: queued.queue[0]!.requestId,
      });
      await waitForLock(t.environment, a.workflowId, [d.workflowId]);
      await waitForPositions(d, [3, 2, 1]);
      await waitForLogs('requester is gone', {
        workflowId: lock.workflowId,
        requesterWorkflowId: c.workflowId,
      });
      await b.terminate('its request was withdrawn for the test');

      // E closes without withdrawing; it is found out when it is granted the lock, and the lock goes idle.
      const e = await startRequester(t, 'e');
      await waitForLock(t.environment, a.workflowId, [d.workflowId, e.workflowId]);
      await e.terminate('gone while queued');
      expect((await finish(a)).positions).toEqual([]);
      expect((await finish(d)).positions).toEqual([3, 2, 1]);
      expect(await lock.result()).toEqual({ environment: t.environment });
      await waitForLogs('requester is gone', {
        workflowId: lock.workflowId,
        requesterWorkflowId: e.workflowId,
      });
    });
  });

  it('a cancelled waiter leaves the queue; a cancelled holder releases at once', async () => {
    await withLockWorker(async (t) => {
      const a = await startRequester(t, 'a');
      await waitForLock(t.environment, a.workflowId, []);
      const b = await startRequester(t, 'b');
      await waitForLock(t.environment, a.workflowId, [b.workflowId]);
      const c = await startRequester(t, 'c');
      await waitForLock(t.environment, a.workflowId, [b.workflowId, c.workflowId]);
      await waitForPositions(c, [2]);

      await b.cancel();
      const cancelled = await b.result().then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(cancelled).toBeInstanceOf(WorkflowFailedError);
      expect((cancelled as WorkflowFailedError).cause).toBeInstanceOf(CancelledFailure);
      await waitForLock(t.environment, a.workflowId, [c.workflowId]);
      await waitForPositions(c, [2, 1]);

      const start = await env.currentTimeMs();
      await a.cancel();
      await waitForLock(t.environment, c.workflowId, []);
      // Released by the holder itself, not taken back by a holder check.
      expect((await env.currentTimeMs()) - start).toBeLessThan(DEFAULT_HOLDER_CHECK_INTERVAL_MS);
      expect((await finish(c)).positions).toEqual([2, 1]);
      await lockHandle(t.environment).result();
    });
  });

  it('completes when idle, runs while held, and the next request starts a new run', async () => {
    await withLockWorker(async (t) => {
      const a = await startRequester(t, 'a');
      await waitForLock(t.environment, a.workflowId, []);
      const lock = lockHandle(t.environment);
      const first = await lock.describe();
      expect(first.status.name).toBe('RUNNING');
      await finish(a);
      expect(await lock.result()).toEqual({ environment: t.environment });
      expect((await lock.describe()).status.name).toBe('COMPLETED');

      const d = await startRequester(t, 'd');
      await waitForLock(t.environment, d.workflowId, []);
      const second = await lock.describe();
      expect(second.status.name).toBe('RUNNING');
      expect(second.runId).not.toBe(first.runId);
      expect((await finish(d)).positions).toEqual([]);
      await lock.result();
    });
  });

  it('a repeated acquire with the same request id does not queue twice; malformed requests are ignored', async () => {
    await withLockWorker(async (t) => {
      const a = await startRequester(t, 'a');
      await waitForLock(t.environment, a.workflowId, []);
      const b = await startRequester(t, 'b');
      const state = await waitForLock(t.environment, a.workflowId, [b.workflowId]);
      const [holder, waiter] = [state.holder!, state.queue[0]!];

      const runIdOf = async (h: WorkflowHandle) => (await h.describe()).runId;
      for (const [request, handle] of [
        [holder, a],
        [waiter, b],
      ] as const) {
        await t.activities.requestEnvironmentLock({
          environment: t.environment,
          requesterWorkflowId: request.requesterWorkflowId,
          requesterRunId: await runIdOf(handle),
          requestId: request.requestId,
        });
      }
      const lock = lockHandle(t.environment);
      await lock.signal(acquireEnvironmentLockSignal, { requesterWorkflowId: 'x' });
      await lock.signal(acquireEnvironmentLockSignal, 'not an object');

      await waitForLogs(
        'ignored an invalid acquireEnvironmentLock signal',
        { workflowId: lock.workflowId },
        2,
      );
      const after = await lock.query(environmentLockStateQuery);
      expect(after.holder?.requestId).toBe(holder.requestId);
      expect(after.queue.map((w) => w.requestId)).toEqual([waiter.requestId]);
      expect((await requesterState(b)).positions).toEqual([1]);

      expect((await finish(a)).positions).toEqual([]);
      expect((await finish(b)).positions).toEqual([1]);
      await lock.result();
    });
  });

  it('continues as new with its holder and queue, and serves them in order afterwards', async () => {
    await withLockWorker(
      async (t) => {
        const a = await startRequester(t, 'a');
        await waitForLock(t.environment, a.workflowId, []);
        const b = await startRequester(t, 'b');
        await waitForLock(t.environment, a.workflowId, [b.workflowId]);
        const c = await startRequester(t, 'c');
        const before = await waitForLock(t.environment, a.workflowId, [b.workflowId, c.workflowId]);
        await waitForPositions(c, [2]);
        const lock = lockHandle(t.environment);
        // Unknown releases only add history: push the lock over its threshold without changing its state.
        for (let i = 0; i < 12; i++) {
          await lock.signal(releaseEnvironmentLockSignal, {
            requesterWorkflowId: 'nobody',
            requestId: `r${i}`,
          });
        }
        await waitFor(async () => (await continuedFrom(t.environment)) !== '', 'the lock to continue as new');

        const after = await waitForLock(t.environment, a.workflowId, [b.workflowId, c.workflowId]);
        expect(after.holder).toEqual(before.holder);
        expect(after.queue).toEqual(before.queue);

        const [ra, rb, rc] = [await finish(a), await finish(b), await finish(c)];
        expect(rb.acquiredAtMs).toBeGreaterThanOrEqual(ra.releasedAtMs);
        expect(rc.acquiredAtMs).toBeGreaterThanOrEqual(rb.releasedAtMs);
        // Carried positions are not told again.
        expect([ra.positions, rb.positions, rc.positions]).toEqual([[], [1], [2, 1]]);
        await lock.result();
      },
      { continueAsNewAfterEvents: 20 },
    );
  });

  it('a requester hands back a grant of a request it already released (a late duplicate request)', async () => {
    await withLockWorker(async (t) => {
      const a = await startRequester(t, 'a', true);
      const held = await waitForLock(t.environment, a.workflowId, []);
      await a.signal(proceedSignal);
      const lock = lockHandle(t.environment);
      await lock.result();
      await waitFor(async () => (await requesterState(a)).phase === 'released', 'A to release');

      // The same request arrives once more after its release: the lock grants it, and A gives it back.
      await t.activities.requestEnvironmentLock({
        environment: t.environment,
        requesterWorkflowId: a.workflowId,
        requesterRunId: (await a.describe()).runId,
        requestId: held.holder!.requestId,
      });
      expect(await lock.result()).toEqual({ environment: t.environment });
      const history = await lock.fetchHistory();
      const released = history.events?.filter(
        (e) => e.workflowExecutionSignaledEventAttributes?.signalName === 'releaseEnvironmentLock',
      );
      expect(released).toHaveLength(1);
      await a.signal(proceedSignal);
      expect((await a.result()).positions).toEqual([]);
    });
  });

  it('fails a run with malformed input as non-retryable InvalidInput', async () => {
    await withLockWorker(async (t) => {
      const err = await env.client.workflow
        .execute(environmentLockWorkflow, {
          workflowId: uid('bad-lock'),
          taskQueue: t.taskQueue,
          args: [{ environment: 'no spaces allowed', holderCheckIntervalMs: 5 }],
        })
        .then(
          () => undefined,
          (e: unknown) => e,
        );
      expect(err).toBeInstanceOf(WorkflowFailedError);
      const cause = (err as WorkflowFailedError).cause;
      expect(cause).toBeInstanceOf(ApplicationFailure);
      expect(cause).toMatchObject({ type: 'InvalidInput', nonRetryable: true });
      expect(cause?.message).toMatch(/environment: .*holderCheckIntervalMs/);
    });
  });
});

describe('createTemporalActivities', () => {
  it('isWorkflowOpen: running is open; terminated and unknown workflows are closed', async () => {
    await withLockWorker(async (t) => {
      const a = await startRequester(t, 'a');
      await waitForLock(t.environment, a.workflowId, []);
      const runId = (await a.describe()).runId;
      expect(await t.activities.isWorkflowOpen({ workflowId: a.workflowId, runId })).toEqual({
        open: true,
        status: 'RUNNING',
      });
      await a.terminate('test');
      expect(await t.activities.isWorkflowOpen({ workflowId: a.workflowId, runId })).toEqual({
        open: false,
        status: 'TERMINATED',
      });
      expect(await t.activities.isWorkflowOpen({ workflowId: uid('never-started') })).toEqual({
        open: false,
        status: 'NOT_FOUND',
      });
      await lockHandle(t.environment).terminate('test over');
    });
  });

  it('malformed input is a non-retryable InvalidInput', async () => {
    const activities = createTemporalActivities({ client: env.client, taskQueue: uid('unused') });
    await expect(activities.isWorkflowOpen({ workflowId: '' })).rejects.toMatchObject({
      type: 'InvalidInput',
      nonRetryable: true,
    });
    await expect(
      activities.requestEnvironmentLock({ environment: 'bad env', requesterWorkflowId: 'w', requestId: 'r' }),
    ).rejects.toMatchObject({ type: 'InvalidInput', nonRetryable: true });
  });

  it('an unreachable frontend is a retryable UpstreamUnavailable', async () => {
    const connection = Connection.lazy({
      address: '127.0.0.1:1',
      interceptors: [],
      connectTimeout: '2 seconds',
    });
    const activities = createTemporalActivities({
      client: new Client({ connection }),
      taskQueue: uid('unused'),
    });
    try {
      for (const call of [
        () => activities.isWorkflowOpen({ workflowId: 'w' }),
        () =>
          activities.requestEnvironmentLock({
            environment: 'production',
            requesterWorkflowId: 'w',
            requestId: 'r',
          }),
      ]) {
        const err = await call().then(
          () => undefined,
          (e: unknown) => e,
        );
        expect(err).toBeInstanceOf(ApplicationFailure);
        expect(err).toMatchObject({ type: 'UpstreamUnavailable', nonRetryable: false });
        expect((err as ApplicationFailure).message).toMatch(/Temporal frontend is reachable/);
      }
    } finally {
      await connection.close();
    }
  });
});
