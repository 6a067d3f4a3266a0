/**
 * Conformance of the embedded dev server (time-skipping mode) for the workflow lifecycle: start policies,
 * failures, signals and queries, cancellation, termination, UnhandledCommand, history paging and
 * continue-as-new. Histories are compared with real-server reference histories and replayed.
 */
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import {
  Client,
  QueryNotRegisteredError,
  QueryRejectedError,
  ServiceError,
  WorkflowExecutionAlreadyStartedError,
  WorkflowFailedError,
  WorkflowNotFoundError,
  type WorkflowHandle,
} from '@temporalio/client';
import { Context } from '@temporalio/activity';
import {
  ApplicationFailure,
  CancelledFailure,
  SearchAttributeType,
  TerminatedFailure,
  TimeoutFailure,
  TimeoutType,
  defineSearchAttributeKey,
} from '@temporalio/common';
import { tsToMs } from '@temporalio/common/lib/time';
import { temporal } from '@temporalio/proto';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { DefaultLogger, Runtime, Worker } from '@temporalio/worker';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  bundle,
  createTimeSkippingEnv,
  eventTypes,
  historyOf,
  referenceEventTypes,
  replay,
  uid,
  waitFor,
  type History,
} from './helpers';
import {
  activityAndTimer,
  alwaysFailsWorkflowTask,
  boomQuery,
  cleanupOnCancel,
  collectNotes,
  continueAsNewChain,
  echo,
  failFirstWorkflowTask,
  failWithApplicationFailure,
  finishSignal,
  gateThenReturnNotes,
  gateThenWaitForNote,
  gated,
  noteSignal,
  notesQuery,
  sleepFor,
  type LifecycleActivities,
} from './workflows/lifecycle';

const workflowsFile = path.join(__dirname, 'workflows/lifecycle.ts');
const enums = temporal.api.enums.v1;
const keywordKey = defineSearchAttributeKey('LifecycleKeyword', SearchAttributeType.KEYWORD);

let env: TestWorkflowEnvironment;
/** The file's worker polls this queue; it runs (worker.runUntil) from beforeAll until afterAll. */
const sharedTaskQueue = uid('lifecycle');
let stopSharedWorker: () => void = () => undefined;
let sharedWorkerDone: Promise<void> = Promise.resolve();

beforeAll(async () => {
  Runtime.install({ logger: new DefaultLogger('WARN') });
  await bundle(workflowsFile);
  env = await createTimeSkippingEnv();
  await env.connection.operatorService.addSearchAttributes({
    namespace: 'default',
    searchAttributes: { LifecycleKeyword: enums.IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD },
  });
  const stop = deferred<void>();
  stopSharedWorker = () => stop.resolve();
  sharedWorkerDone = (await createWorker(sharedTaskQueue)).runUntil(stop.promise);
}, 60_000);

afterAll(async () => {
  // A failed test may have left a local activity blocked on its gate.
  for (const gate of gates.values()) gate.released.resolve();
  stopSharedWorker();
  await sharedWorkerDone;
  await env?.teardown();
});

// ---------------------------------------------------------------------------------------------------------
// Activities that share state with the tests
// ---------------------------------------------------------------------------------------------------------

interface Deferred<T> {
  promise: Promise<T>;
  resolve: (value: T) => void;
}

function deferred<T>(): Deferred<T> {
  let resolve!: (value: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}

interface Gate {
  calls: number;
  started: Deferred<void>;
  released: Deferred<void>;
}

const gates = new Map<string, Gate>();

function gateFor(key: string): Gate {
  let g = gates.get(key);
  if (!g) {
    g = { calls: 0, started: deferred(), released: deferred() };
    gates.set(key, g);
  }
  return g;
}

const activities: LifecycleActivities = {
  async gate(key) {
    const g = gateFor(key);
    g.calls++;
    if (g.calls === 1) {
      g.started.resolve();
      await g.released.promise;
    }
    return g.calls;
  },
  async waitForCancel(key) {
    gateFor(key).started.resolve();
    for (;;) {
      Context.current().heartbeat();
      await Context.current().sleep(100);
    }
  },
};

// ---------------------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------------------

async function createWorker(taskQueue: string): Promise<Worker> {
  return await Worker.create({
    connection: env.nativeConnection,
    taskQueue,
    workflowBundle: await bundle(workflowsFile),
    activities,
  });
}

/** Runs `fn` against the file's worker (Worker.create costs about a second, so one serves all tests). */
async function withWorker<T>(fn: (taskQueue: string) => Promise<T>): Promise<T> {
  return await fn(sharedTaskQueue);
}

async function waitForEvent(handle: WorkflowHandle, type: string): Promise<History> {
  return await waitFor(async () => {
    const history = await historyOf(handle);
    return eventTypes(history).includes(type) && history;
  }, `${type} in the history of ${handle.workflowId}`);
}

async function statusOf(handle: WorkflowHandle): Promise<string> {
  return (await handle.describe()).status.name;
}

function events(history: History): temporal.api.history.v1.IHistoryEvent[] {
  return history.events ?? [];
}

function startedAttributes(
  history: History,
): temporal.api.history.v1.IWorkflowExecutionStartedEventAttributes {
  const attrs = events(history)[0]?.workflowExecutionStartedEventAttributes;
  if (!attrs) throw new Error('history does not begin with WorkflowExecutionStarted');
  return attrs;
}

async function failureOf(promise: Promise<unknown>): Promise<WorkflowFailedError> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(WorkflowFailedError);
  return err as WorkflowFailedError;
}

const WES = 'WorkflowExecutionStarted';
const WTS = 'WorkflowTaskScheduled';
const WTSt = 'WorkflowTaskStarted';
const WTC = 'WorkflowTaskCompleted';
const WTF = 'WorkflowTaskFailed';
const firstTask = [WES, WTS, WTSt, WTC];

// ---------------------------------------------------------------------------------------------------------
// 1. Start
// ---------------------------------------------------------------------------------------------------------

describe('start', () => {
  it('rejects a second start of a running workflow id with WorkflowExecutionAlreadyStartedError', async () => {
    await withWorker(async (taskQueue) => {
      const workflowId = uid('conflict');
      const handle = await env.client.workflow.start(collectNotes, { taskQueue, workflowId });
      await expect(env.client.workflow.start(collectNotes, { taskQueue, workflowId })).rejects.toBeInstanceOf(
        WorkflowExecutionAlreadyStartedError,
      );
      await handle.signal(finishSignal);
      expect(await handle.result()).toEqual([]);
      const history = await historyOf(handle);
      expect(eventTypes(history)).toEqual([
        ...firstTask,
        'WorkflowExecutionSignaled',
        WTS,
        WTSt,
        WTC,
        'WorkflowExecutionCompleted',
      ]);
      await replay(history, workflowsFile);
    });
  });

  it('workflowIdConflictPolicy USE_EXISTING returns the running run', async () => {
    await withWorker(async (taskQueue) => {
      const workflowId = uid('use-existing');
      const first = await env.client.workflow.start(collectNotes, { taskQueue, workflowId });
      const second = await env.client.workflow.start(collectNotes, {
        taskQueue,
        workflowId,
        workflowIdConflictPolicy: 'USE_EXISTING',
      });
      expect(second.firstExecutionRunId).toBe(first.firstExecutionRunId);
      await first.signal(finishSignal);
      expect(await second.result()).toEqual([]);
      expect(eventTypes(await historyOf(first)).filter((t) => t === WES)).toHaveLength(1);
      await replay(await historyOf(first), workflowsFile);
    });
  });

  it('workflowIdConflictPolicy TERMINATE_EXISTING terminates the running run and starts a new one', async () => {
    await withWorker(async (taskQueue) => {
      const workflowId = uid('terminate-existing');
      const first = await env.client.workflow.start(collectNotes, { taskQueue, workflowId });
      await waitForEvent(first, WTC);
      const second = await env.client.workflow.start(collectNotes, {
        taskQueue,
        workflowId,
        workflowIdConflictPolicy: 'TERMINATE_EXISTING',
      });
      expect(second.firstExecutionRunId).not.toBe(first.firstExecutionRunId);
      const oldRun = env.client.workflow.getHandle(workflowId, first.firstExecutionRunId);
      expect(await statusOf(oldRun)).toBe('TERMINATED');
      const oldHistory = await historyOf(oldRun);
      expect(eventTypes(oldHistory)).toEqual([...firstTask, 'WorkflowExecutionTerminated']);
      await replay(oldHistory, workflowsFile);
      const failure = await failureOf(oldRun.result());
      expect(failure.cause).toBeInstanceOf(TerminatedFailure);

      expect(await statusOf(second)).toBe('RUNNING');
      await second.signal(finishSignal);
      expect(await second.result()).toEqual([]);
      await replay(await historyOf(second), workflowsFile);
    });
  });

  it('workflowIdReusePolicy REJECT_DUPLICATE refuses a new run after completion', async () => {
    await withWorker(async (taskQueue) => {
      const workflowId = uid('reject-duplicate');
      expect(await env.client.workflow.execute(echo, { taskQueue, workflowId, args: ['once'] })).toBe('once');
      await expect(
        env.client.workflow.start(echo, {
          taskQueue,
          workflowId,
          args: ['twice'],
          workflowIdReusePolicy: 'REJECT_DUPLICATE',
        }),
      ).rejects.toBeInstanceOf(WorkflowExecutionAlreadyStartedError);
      // The default policy (ALLOW_DUPLICATE) starts a new run.
      expect(await env.client.workflow.execute(echo, { taskQueue, workflowId, args: ['again'] })).toBe(
        'again',
      );
      const history = await historyOf(env.client.workflow.getHandle(workflowId));
      expect(eventTypes(history)).toEqual([...firstTask, 'WorkflowExecutionCompleted']);
      await replay(history, workflowsFile);
    });
  });

  it('workflowIdReusePolicy ALLOW_DUPLICATE_FAILED_ONLY allows a new run only after a failed one', async () => {
    await withWorker(async (taskQueue) => {
      const completedId = uid('failed-only-completed');
      expect(
        await env.client.workflow.execute(echo, { taskQueue, workflowId: completedId, args: ['ok'] }),
      ).toBe('ok');
      await expect(
        env.client.workflow.start(echo, {
          taskQueue,
          workflowId: completedId,
          args: ['no'],
          workflowIdReusePolicy: 'ALLOW_DUPLICATE_FAILED_ONLY',
        }),
      ).rejects.toBeInstanceOf(WorkflowExecutionAlreadyStartedError);

      const failedId = uid('failed-only-failed');
      await failureOf(
        env.client.workflow.execute(failWithApplicationFailure, {
          taskQueue,
          workflowId: failedId,
          args: ['first run'],
        }),
      );
      expect(
        await env.client.workflow.execute(echo, {
          taskQueue,
          workflowId: failedId,
          args: ['second run'],
          workflowIdReusePolicy: 'ALLOW_DUPLICATE_FAILED_ONLY',
        }),
      ).toBe('second run');
      const { executions } = await env.client.workflowService.listWorkflowExecutions({
        namespace: 'default',
        query: `WorkflowId = '${failedId}'`,
      });
      expect(executions.map((e) => e.status).sort()).toEqual(
        [
          enums.WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_COMPLETED,
          enums.WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_FAILED,
        ].sort(),
      );
      await replay(await historyOf(env.client.workflow.getHandle(failedId)), workflowsFile);
    });
  });

  it('the same requestId makes StartWorkflowExecution idempotent', async () => {
    const workflowId = uid('request-id');
    const taskQueue = uid('no-worker');
    const request = {
      namespace: 'default',
      workflowId,
      workflowType: { name: 'collectNotes' },
      taskQueue: { name: taskQueue },
      identity: 'workflows.test',
      requestId: randomUUID(),
    };
    const a = await env.client.workflowService.startWorkflowExecution(request);
    const b = await env.client.workflowService.startWorkflowExecution(request);
    expect(a.runId).toBeTruthy();
    expect(b.runId).toBe(a.runId);
    await expect(
      env.client.workflowService.startWorkflowExecution({ ...request, requestId: randomUUID() }),
    ).rejects.toMatchObject({ code: 6 /* ALREADY_EXISTS */ });
    const handle = env.client.workflow.getHandle(workflowId);
    expect((await handle.describe()).runId).toBe(a.runId);
    expect(eventTypes(await historyOf(handle))).toEqual([WES, WTS]);
    await handle.terminate('no worker in this test');
  });

  it('memo and search attributes are visible in describe()', async () => {
    await withWorker(async (taskQueue) => {
      const handle = await env.client.workflow.start(collectNotes, {
        taskQueue,
        workflowId: uid('memo'),
        memo: { owner: 'release-team', attempt: 3 },
        typedSearchAttributes: [{ key: keywordKey, value: 'lifecycle' }],
      });
      const description = await handle.describe();
      expect(description.memo).toEqual({ owner: 'release-team', attempt: 3 });
      expect(description.typedSearchAttributes.get(keywordKey)).toBe('lifecycle');
      expect(description.taskQueue).toBe(taskQueue);
      expect(description.type).toBe('collectNotes');
      const started = startedAttributes(await historyOf(handle));
      expect(Object.keys(started.memo?.fields ?? {}).sort()).toEqual(['attempt', 'owner']);
      expect(Object.keys(started.searchAttributes?.indexedFields ?? {})).toEqual(['LifecycleKeyword']);
      await handle.signal(finishSignal);
      await handle.result();
      await replay(await historyOf(handle), workflowsFile);
    });
  });

  it('startDelay sets firstWorkflowTaskBackoff and postpones the first workflow task', async () => {
    await withWorker(async (taskQueue) => {
      const handle = await env.client.workflow.start(echo, {
        taskQueue,
        workflowId: uid('start-delay'),
        args: ['delayed'],
        startDelay: '1 hour',
      });
      expect(eventTypes(await historyOf(handle))).toEqual([WES]);
      const description = await handle.describe();
      expect(description.executionTime!.getTime() - description.startTime.getTime()).toBe(3600_000);
      // As the real server: no workflow task was scheduled yet, so a query fails fast (FAILED_PRECONDITION).
      const queryError = await handle.query(notesQuery).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(queryError).toBeInstanceOf(ServiceError);
      expect((queryError as ServiceError).cause).toMatchObject({ code: 9 /* FAILED_PRECONDITION */ });
      expect(await handle.result()).toBe('delayed');
      const history = await historyOf(handle);
      expect(eventTypes(history)).toEqual([...firstTask, 'WorkflowExecutionCompleted']);
      const started = startedAttributes(history);
      expect(Number(started.firstWorkflowTaskBackoff?.seconds)).toBe(3600);
      const [startedEvent, scheduledEvent] = events(history);
      expect(tsToMs(scheduledEvent!.eventTime) - tsToMs(startedEvent!.eventTime)).toBeGreaterThanOrEqual(
        3600_000,
      );
      await replay(history, workflowsFile);
    });
  });

  it('a signal does not cut the start delay short; SignalWithStart does', async () => {
    await withWorker(async (taskQueue) => {
      const workflowId = uid('delay-signal');
      const handle = await env.client.workflow.start(collectNotes, {
        taskQueue,
        workflowId,
        startDelay: '1 hour',
      });
      await handle.signal(noteSignal, 'plain');
      expect(eventTypes(await historyOf(handle))).toEqual([WES, 'WorkflowExecutionSignaled']);
      const signaled = await env.client.workflow.signalWithStart(collectNotes, {
        taskQueue,
        workflowId,
        signal: noteSignal,
        signalArgs: ['with start'],
        startDelay: '1 hour',
      });
      expect(signaled.signaledRunId).toBe(handle.firstExecutionRunId);
      expect(eventTypes(await historyOf(handle)).slice(0, 4)).toEqual([
        WES,
        'WorkflowExecutionSignaled',
        'WorkflowExecutionSignaled',
        WTS,
      ]);
      // Time is locked here (no result() awaited), so the task ran without the hour passing.
      const afterTask = await waitForEvent(handle, WTC);
      const [startedEvent] = events(afterTask);
      const scheduledEvent = events(afterTask)[3]!;
      expect(tsToMs(scheduledEvent.eventTime) - tsToMs(startedEvent!.eventTime)).toBeLessThan(3600_000);
      expect(await handle.query(notesQuery)).toEqual(['plain', 'with start']);
      // When the original delay runs out, no second first task is scheduled.
      const before = eventTypes(await historyOf(handle));
      await env.sleep('2 hours');
      expect(eventTypes(await historyOf(handle))).toEqual(before);
      await handle.signal(finishSignal);
      expect(await handle.result()).toEqual(['plain', 'with start']);
      await replay(await historyOf(handle), workflowsFile);
    });
  });

  it('workflowRunTimeout times the run out', async () => {
    await withWorker(async (taskQueue) => {
      const handle = await env.client.workflow.start(sleepFor, {
        taskQueue,
        workflowId: uid('run-timeout'),
        args: ['1 day'],
        workflowRunTimeout: '1 hour',
      });
      const failure = await failureOf(handle.result());
      expect(failure.cause).toBeInstanceOf(TimeoutFailure);
      expect((failure.cause as TimeoutFailure).timeoutType).toBe(TimeoutType.START_TO_CLOSE);
      expect(await statusOf(handle)).toBe('TIMED_OUT');
      const history = await historyOf(handle);
      expect(eventTypes(history)).toEqual([...firstTask, 'TimerStarted', 'WorkflowExecutionTimedOut']);
      const [startedEvent] = events(history);
      const timedOut = events(history).at(-1)!;
      expect(tsToMs(timedOut.eventTime) - tsToMs(startedEvent!.eventTime)).toBeGreaterThanOrEqual(3600_000);
      expect(tsToMs(timedOut.eventTime) - tsToMs(startedEvent!.eventTime)).toBeLessThan(86_400_000);
      await replay(history, workflowsFile);
    });
  });

  it('workflowExecutionTimeout times the execution out', async () => {
    await withWorker(async (taskQueue) => {
      const handle = await env.client.workflow.start(sleepFor, {
        taskQueue,
        workflowId: uid('execution-timeout'),
        args: ['1 day'],
        workflowExecutionTimeout: '2 hours',
      });
      const failure = await failureOf(handle.result());
      expect(failure.cause).toBeInstanceOf(TimeoutFailure);
      expect(await statusOf(handle)).toBe('TIMED_OUT');
      const history = await historyOf(handle);
      expect(eventTypes(history)).toEqual([...firstTask, 'TimerStarted', 'WorkflowExecutionTimedOut']);
      expect(Number(startedAttributes(history).workflowExecutionTimeout?.seconds)).toBe(7200);
      await replay(history, workflowsFile);
    });
  });
});

// ---------------------------------------------------------------------------------------------------------
// 2. Failures
// ---------------------------------------------------------------------------------------------------------

describe('failures', () => {
  it('an ApplicationFailure fails the workflow', async () => {
    await withWorker(async (taskQueue) => {
      const handle = await env.client.workflow.start(failWithApplicationFailure, {
        taskQueue,
        workflowId: uid('app-failure'),
        args: ['it went wrong'],
      });
      const failure = await failureOf(handle.result());
      expect(failure.cause).toBeInstanceOf(ApplicationFailure);
      expect((failure.cause as ApplicationFailure).type).toBe('LifecycleError');
      expect(failure.cause?.message).toBe('it went wrong');
      expect(await statusOf(handle)).toBe('FAILED');
      const history = await historyOf(handle);
      expect(eventTypes(history)).toEqual([...firstTask, 'WorkflowExecutionFailed']);
      await replay(history, workflowsFile);
    });
  });

  it('a plain Error fails the workflow task, which is retried as attempt 2', async () => {
    await withWorker(async (taskQueue) => {
      const handle = await env.client.workflow.start(failFirstWorkflowTask, {
        taskQueue,
        workflowId: uid('wft-failure'),
      });
      expect(await handle.result()).toBe('succeeded with history length 6');
      const history = await historyOf(handle);
      const types = eventTypes(history);
      expect(types).toEqual([WES, WTS, WTSt, WTF, WTS, WTSt, WTC, 'WorkflowExecutionCompleted']);
      // The real server's history of a workflow task failure and its retry begins the same way.
      expect(types.slice(0, 7)).toEqual(
        referenceEventTypes('sdk-go__gogoproto-payload-workflow.json').slice(0, 7),
      );
      const e = events(history);
      const failed = e[3]!.workflowTaskFailedEventAttributes!;
      expect(failed.cause).toBe(
        enums.WorkflowTaskFailedCause.WORKFLOW_TASK_FAILED_CAUSE_WORKFLOW_WORKER_UNHANDLED_FAILURE,
      );
      expect(failed.failure?.message).toContain('plain error in the first workflow task');
      expect(Number(failed.scheduledEventId)).toBe(2);
      expect(Number(failed.startedEventId)).toBe(3);
      expect(e[1]!.workflowTaskScheduledEventAttributes!.attempt).toBe(1);
      expect(e[4]!.workflowTaskScheduledEventAttributes!.attempt).toBe(2);
      expect(Number(e[5]!.workflowTaskStartedEventAttributes!.scheduledEventId)).toBe(5);
      await replay(history, workflowsFile);
    });
  });

  it('silent retries of a failing workflow task time out and are retried again until terminated', async () => {
    await withWorker(async (taskQueue) => {
      const handle = await env.client.workflow.start(alwaysFailsWorkflowTask, {
        taskQueue,
        workflowId: uid('poison'),
        // Long enough for a loaded machine to report attempt 1 before it times out.
        workflowTaskTimeout: '3 seconds',
      });
      // The worker reports only the first failure; the server times out attempt 2 and schedules attempt 3.
      const history = await waitForEvent(handle, 'WorkflowTaskTimedOut');
      const types = eventTypes(history);
      expect(types.slice(0, 7)).toEqual([WES, WTS, WTSt, WTF, WTS, WTSt, 'WorkflowTaskTimedOut']);
      const e = events(history);
      expect(e[4]!.workflowTaskScheduledEventAttributes!.attempt).toBe(2);
      expect(e[6]!.workflowTaskTimedOutEventAttributes!.timeoutType).toBe(
        enums.TimeoutType.TIMEOUT_TYPE_START_TO_CLOSE,
      );
      expect(Number(e[6]!.workflowTaskTimedOutEventAttributes!.scheduledEventId)).toBe(5);
      expect(e[7]!.workflowTaskScheduledEventAttributes!.attempt).toBe(3);
      expect(await statusOf(handle)).toBe('RUNNING');
      await handle.terminate('poisoned');
      const failure = await failureOf(handle.result());
      expect(failure.cause).toBeInstanceOf(TerminatedFailure);
      const final = eventTypes(await historyOf(handle));
      expect(final.at(-1)).toBe('WorkflowExecutionTerminated');
      await replay(await historyOf(handle), workflowsFile);
    });
  });
});

// ---------------------------------------------------------------------------------------------------------
// 3. Signals and queries
// ---------------------------------------------------------------------------------------------------------

describe('signals and queries', () => {
  it('a signal sent before the first workflow task starts is written before WorkflowTaskStarted', async () => {
    const taskQueue = uid('late-worker');
    const handle = await env.client.workflow.start(collectNotes, {
      taskQueue,
      workflowId: uid('signal-before'),
    });
    await handle.signal(noteSignal, 'early');
    await handle.signal(finishSignal);
    expect(eventTypes(await historyOf(handle))).toEqual([
      WES,
      WTS,
      'WorkflowExecutionSignaled',
      'WorkflowExecutionSignaled',
    ]);
    await (
      await createWorker(taskQueue)
    ).runUntil(async () => {
      expect(await handle.result()).toEqual(['early']);
    });
    const history = await historyOf(handle);
    expect(eventTypes(history)).toEqual([
      WES,
      WTS,
      'WorkflowExecutionSignaled',
      'WorkflowExecutionSignaled',
      WTSt,
      WTC,
      'WorkflowExecutionCompleted',
    ]);
    await replay(history, workflowsFile);
  });

  it('a signal sent during a workflow task is buffered until the task completes', async () => {
    await withWorker(async (taskQueue) => {
      const key = uid('gate');
      const handle = await env.client.workflow.start(gateThenWaitForNote, {
        taskQueue,
        workflowId: uid('signal-during'),
        args: [key],
      });
      await gateFor(key).started.promise;
      await handle.signal(noteSignal, 'during');
      // Buffered events are invisible while the task runs.
      expect(eventTypes(await historyOf(handle))).toEqual([WES, WTS, WTSt]);
      gateFor(key).released.resolve();
      expect(await handle.result()).toEqual(['during']);
      const history = await historyOf(handle);
      expect(eventTypes(history)).toEqual([
        ...firstTask,
        'MarkerRecorded',
        'WorkflowExecutionSignaled',
        WTS,
        WTSt,
        WTC,
        'WorkflowExecutionCompleted',
      ]);
      await replay(history, workflowsFile);
    });
  });

  it('signalWithStart starts a new workflow, then signals the running one', async () => {
    await withWorker(async (taskQueue) => {
      const workflowId = uid('signal-with-start');
      const first = await env.client.workflow.signalWithStart(collectNotes, {
        taskQueue,
        workflowId,
        signal: noteSignal,
        signalArgs: ['first'],
      });
      expect(eventTypes(await historyOf(first)).slice(0, 3)).toEqual([WES, 'WorkflowExecutionSignaled', WTS]);
      await waitForEvent(first, WTC);
      const second = await env.client.workflow.signalWithStart(collectNotes, {
        taskQueue,
        workflowId,
        signal: noteSignal,
        signalArgs: ['second'],
      });
      expect(second.signaledRunId).toBe(first.signaledRunId);
      await second.signal(finishSignal);
      expect(await first.result()).toEqual(['first', 'second']);
      const history = await historyOf(first);
      expect(eventTypes(history).filter((t) => t === WES)).toHaveLength(1);
      expect(eventTypes(history).filter((t) => t === 'WorkflowExecutionSignaled')).toHaveLength(3);
      await replay(history, workflowsFile);
    });
  });

  it('queries a running and a completed workflow without writing events', async () => {
    await withWorker(async (taskQueue) => {
      const handle = await env.client.workflow.start(collectNotes, { taskQueue, workflowId: uid('query') });
      await handle.signal(noteSignal, 'a');
      await waitFor(async () => (await handle.query(notesQuery)).length === 1, 'the note to be handled');
      const before = eventTypes(await historyOf(handle));
      expect(await handle.query(notesQuery)).toEqual(['a']);
      expect(eventTypes(await historyOf(handle))).toEqual(before);

      await handle.signal(noteSignal, 'b');
      await handle.signal(finishSignal);
      expect(await handle.result()).toEqual(['a', 'b']);
      const closed = eventTypes(await historyOf(handle));
      // A completed workflow is queried through a legacy query task.
      expect(await handle.query(notesQuery)).toEqual(['a', 'b']);
      expect(eventTypes(await historyOf(handle))).toEqual(closed);
      await replay(await historyOf(handle), workflowsFile);
    });
  });

  it('a query sent while a workflow task runs is answered after the signal buffered during that task', async () => {
    await withWorker(async (taskQueue) => {
      const key = uid('gate');
      const handle = await env.client.workflow.start(gateThenWaitForNote, {
        taskQueue,
        workflowId: uid('query-during'),
        args: [key],
      });
      await gateFor(key).started.promise;
      await handle.signal(noteSignal, 'buffered');
      const answer = handle.query(notesQuery);
      gateFor(key).released.resolve();
      expect(await answer).toEqual(['buffered']);
      expect(await handle.result()).toEqual(['buffered']);
      expect(eventTypes(await historyOf(handle))).toEqual([
        ...firstTask,
        'MarkerRecorded',
        'WorkflowExecutionSignaled',
        WTS,
        WTSt,
        WTC,
        'WorkflowExecutionCompleted',
      ]);
      await replay(await historyOf(handle), workflowsFile);
    });
  });

  it('signal, cancel and terminate of a closed workflow fail with WorkflowNotFoundError', async () => {
    await withWorker(async (taskQueue) => {
      const handle = await env.client.workflow.start(echo, {
        taskQueue,
        workflowId: uid('closed'),
        args: ['x'],
      });
      expect(await handle.result()).toBe('x');
      await expect(handle.signal(noteSignal, 'late')).rejects.toBeInstanceOf(WorkflowNotFoundError);
      await expect(handle.cancel()).rejects.toBeInstanceOf(WorkflowNotFoundError);
      await expect(handle.terminate('late')).rejects.toBeInstanceOf(WorkflowNotFoundError);
      expect(eventTypes(await historyOf(handle))).toEqual([...firstTask, 'WorkflowExecutionCompleted']);
      await expect(env.client.workflow.getHandle(uid('never-started')).describe()).rejects.toBeInstanceOf(
        WorkflowNotFoundError,
      );
    });
  });

  it('an unregistered query name gives QueryNotRegisteredError, a throwing handler an error', async () => {
    await withWorker(async (taskQueue) => {
      const handle = await env.client.workflow.start(collectNotes, {
        taskQueue,
        workflowId: uid('query-errors'),
      });
      await expect(handle.query('no-such-query')).rejects.toBeInstanceOf(QueryNotRegisteredError);
      await expect(handle.query(boomQuery)).rejects.toThrow(/boom from the query handler/);
      await handle.signal(finishSignal);
      await handle.result();
      await expect(handle.query('no-such-query')).rejects.toBeInstanceOf(QueryNotRegisteredError);
      await replay(await historyOf(handle), workflowsFile);
    });
  });

  it('queryRejectCondition rejects queries by the workflow status', async () => {
    await withWorker(async (taskQueue) => {
      const notOpen = new Client({
        connection: env.connection,
        workflow: { queryRejectCondition: 'NOT_OPEN' },
      });
      const notClean = new Client({
        connection: env.connection,
        workflow: { queryRejectCondition: 'NOT_COMPLETED_CLEANLY' },
      });
      const workflowId = uid('query-reject');
      const handle = await env.client.workflow.start(collectNotes, { taskQueue, workflowId });
      await handle.signal(noteSignal, 'x');
      expect(await notOpen.workflow.getHandle(workflowId).query(notesQuery)).toEqual(['x']);
      await handle.signal(finishSignal);
      await handle.result();
      const rejected = await notOpen.workflow
        .getHandle(workflowId)
        .query(notesQuery)
        .then(
          () => undefined,
          (e: unknown) => e,
        );
      expect(rejected).toBeInstanceOf(QueryRejectedError);
      expect((rejected as QueryRejectedError).status).toBe(
        enums.WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_COMPLETED,
      );
      expect(await notClean.workflow.getHandle(workflowId).query(notesQuery)).toEqual(['x']);

      const terminatedId = uid('query-reject-terminated');
      const terminated = await env.client.workflow.start(collectNotes, {
        taskQueue,
        workflowId: terminatedId,
      });
      await waitForEvent(terminated, WTC);
      await terminated.terminate('done with it');
      await expect(notClean.workflow.getHandle(terminatedId).query(notesQuery)).rejects.toBeInstanceOf(
        QueryRejectedError,
      );
      expect(await env.client.workflow.getHandle(terminatedId).query(notesQuery)).toEqual([]);
      await replay(await historyOf(handle), workflowsFile);
      await replay(await historyOf(terminated), workflowsFile);
    });
  });
});

// ---------------------------------------------------------------------------------------------------------
// 4. Cancel, 5. Terminate
// ---------------------------------------------------------------------------------------------------------

describe('cancel and terminate', () => {
  it('cancel() of a workflow waiting on an activity and a timer has the real server history shape', async () => {
    await withWorker(async (taskQueue) => {
      const key = uid('activity');
      const handle = await env.client.workflow.start(activityAndTimer, {
        taskQueue,
        workflowId: uid('cancel'),
        args: [key],
      });
      await gateFor(key).started.promise;
      await handle.cancel();
      const failure = await failureOf(handle.result());
      expect(failure.cause).toBeInstanceOf(CancelledFailure);
      expect(await statusOf(handle)).toBe('CANCELLED');
      const history = await historyOf(handle);
      expect(eventTypes(history)).toEqual(referenceEventTypes('sdk-java__cancellationScopeDeterminism.json'));
      const e = events(history);
      expect(Number(e[10]!.activityTaskCancelRequestedEventAttributes!.scheduledEventId)).toBe(5);
      expect(Number(e[11]!.timerCanceledEventAttributes!.startedEventId)).toBe(6);
      expect(Number(e[12]!.workflowExecutionCanceledEventAttributes!.workflowTaskCompletedEventId)).toBe(10);
      await replay(history, workflowsFile);
    });
  });

  it('terminate() of a waiting workflow gives TerminatedFailure and status TERMINATED', async () => {
    await withWorker(async (taskQueue) => {
      const handle = await env.client.workflow.start(collectNotes, {
        taskQueue,
        workflowId: uid('terminate'),
      });
      await waitForEvent(handle, WTC);
      await handle.terminate('enough');
      const failure = await failureOf(handle.result());
      expect(failure.cause).toBeInstanceOf(TerminatedFailure);
      expect(failure.message).toBe('enough');
      expect(await statusOf(handle)).toBe('TERMINATED');
      const history = await historyOf(handle);
      expect(eventTypes(history)).toEqual([...firstTask, 'WorkflowExecutionTerminated']);
      expect(events(history)[4]!.workflowExecutionTerminatedEventAttributes!.reason).toBe('enough');
      await replay(history, workflowsFile);
    });
  });

  it('terminate() during a workflow task fails that task first', async () => {
    await withWorker(async (taskQueue) => {
      const key = uid('gate');
      const handle = await env.client.workflow.start(gated, {
        taskQueue,
        workflowId: uid('terminate-inflight'),
        args: [key],
      });
      await gateFor(key).started.promise;
      await handle.terminate('stop now');
      gateFor(key).released.resolve();
      const failure = await failureOf(handle.result());
      expect(failure.cause).toBeInstanceOf(TerminatedFailure);
      expect(await statusOf(handle)).toBe('TERMINATED');
      const history = await historyOf(handle);
      expect(eventTypes(history)).toEqual([WES, WTS, WTSt, WTF, 'WorkflowExecutionTerminated']);
      expect(events(history)[3]!.workflowTaskFailedEventAttributes!.cause).toBe(
        enums.WorkflowTaskFailedCause.WORKFLOW_TASK_FAILED_CAUSE_FORCE_CLOSE_COMMAND,
      );
      await replay(history, workflowsFile);
    });
  });
});

// ---------------------------------------------------------------------------------------------------------
// 6. UnhandledCommand
// ---------------------------------------------------------------------------------------------------------

describe('UnhandledCommand', () => {
  it('a completion while a signal is buffered fails with UnhandledCommand; the retry sees the signal', async () => {
    await withWorker(async (taskQueue) => {
      const key = uid('gate');
      const handle = await env.client.workflow.start(gateThenReturnNotes, {
        taskQueue,
        workflowId: uid('unhandled-signal'),
        args: [key],
      });
      await gateFor(key).started.promise;
      await handle.signal(noteSignal, 'arrived during the task');
      gateFor(key).released.resolve();
      expect(await handle.result()).toEqual(['arrived during the task']);
      expect(gateFor(key).calls).toBe(2);
      const history = await historyOf(handle);
      expect(eventTypes(history)).toEqual([
        WES,
        WTS,
        WTSt,
        WTF,
        'WorkflowExecutionSignaled',
        WTS,
        WTSt,
        WTC,
        'MarkerRecorded',
        'WorkflowExecutionCompleted',
      ]);
      expect(events(history)[3]!.workflowTaskFailedEventAttributes!.cause).toBe(
        enums.WorkflowTaskFailedCause.WORKFLOW_TASK_FAILED_CAUSE_UNHANDLED_COMMAND,
      );
      await replay(history, workflowsFile);
    });
  });

  it('matches events 1-9 of the real server unhandled_cmd_timer_cancel history', async () => {
    await withWorker(async (taskQueue) => {
      const key = uid('gate');
      const handle = await env.client.workflow.start(cleanupOnCancel, {
        taskQueue,
        workflowId: uid('unhandled-cancel'),
        args: [key],
      });
      await waitForEvent(handle, 'TimerStarted');
      await handle.cancel();
      await gateFor(key).started.promise;
      await handle.signal(noteSignal, 'late');
      gateFor(key).released.resolve();
      expect(await handle.result()).toEqual(['late']);
      const history = await historyOf(handle);
      const types = eventTypes(history);
      expect(types.slice(0, 9)).toEqual(
        referenceEventTypes('sdk-go__unhandled_cmd_timer_cancel.json').slice(0, 9),
      );
      expect(types).toEqual([
        ...firstTask,
        'TimerStarted',
        'WorkflowExecutionCancelRequested',
        WTS,
        WTSt,
        WTF,
        'WorkflowExecutionSignaled',
        WTS,
        WTSt,
        WTC,
        'TimerCanceled',
        'MarkerRecorded',
        'WorkflowExecutionCompleted',
      ]);
      const failed = events(history)[8]!.workflowTaskFailedEventAttributes!;
      expect(failed.cause).toBe(enums.WorkflowTaskFailedCause.WORKFLOW_TASK_FAILED_CAUSE_UNHANDLED_COMMAND);
      expect(events(history)[10]!.workflowTaskScheduledEventAttributes!.attempt).toBe(1);
      await replay(history, workflowsFile);
    });
  });
});

// ---------------------------------------------------------------------------------------------------------
// 7. History paging, 8. Continue-as-new
// ---------------------------------------------------------------------------------------------------------

describe('history and continue-as-new', () => {
  it('getWorkflowExecutionHistory pages with maximumPageSize and nextPageToken', async () => {
    await withWorker(async (taskQueue) => {
      const handle = await env.client.workflow.start(collectNotes, { taskQueue, workflowId: uid('paging') });
      for (const note of ['one', 'two', 'three']) {
        await handle.signal(noteSignal, note);
      }
      await handle.signal(finishSignal);
      expect(await handle.result()).toEqual(['one', 'two', 'three']);
      const full = events(await historyOf(handle));
      expect(full.length).toBeGreaterThan(7);

      const pages: temporal.api.history.v1.IHistoryEvent[][] = [];
      let nextPageToken: Uint8Array | undefined;
      do {
        const response = await env.client.workflowService.getWorkflowExecutionHistory({
          namespace: 'default',
          execution: { workflowId: handle.workflowId },
          maximumPageSize: 3,
          nextPageToken,
        });
        pages.push(response.history?.events ?? []);
        nextPageToken = response.nextPageToken?.length ? response.nextPageToken : undefined;
        expect(pages.length).toBeLessThanOrEqual(full.length);
      } while (nextPageToken);
      expect(pages).toHaveLength(Math.ceil(full.length / 3));
      for (const page of pages.slice(0, -1)) expect(page).toHaveLength(3);
      expect(pages.flat().map((e) => Number(e.eventId))).toEqual(full.map((e) => Number(e.eventId)));
      expect(pages.flat().map((e) => e.eventType)).toEqual(full.map((e) => e.eventType));
      await replay({ events: pages.flat() }, workflowsFile);
    });
  });

  it('continue-as-new chains runs; result() follows the chain', async () => {
    await withWorker(async (taskQueue) => {
      const workflowId = uid('continue-as-new');
      const handle = await env.client.workflow.start(continueAsNewChain, {
        taskQueue,
        workflowId,
        args: [2, []],
        memo: { chain: 'kept' },
      });
      const runIds = await handle.result();
      expect(runIds).toHaveLength(3);
      const [first, second, third] = runIds as [string, string, string];
      expect(first).toBe(handle.firstExecutionRunId);
      expect(new Set(runIds).size).toBe(3);

      const runs = runIds.map((runId) => env.client.workflow.getHandle(workflowId, runId));
      const histories = await Promise.all(runs.map((run) => historyOf(run)));
      const reference = referenceEventTypes('sdk-go__continue-as-new.json');
      for (const history of histories.slice(0, 2)) {
        expect(eventTypes(history)).toEqual(reference);
      }
      expect(eventTypes(histories[2]!)).toEqual([...firstTask, 'WorkflowExecutionCompleted']);

      const canEvent = events(histories[0]!)[4]!.workflowExecutionContinuedAsNewEventAttributes!;
      expect(canEvent.newExecutionRunId).toBe(second);
      expect(canEvent.workflowType?.name).toBe('continueAsNewChain');
      expect(canEvent.taskQueue?.name).toBe(taskQueue);
      expect(Number(canEvent.workflowTaskCompletedEventId)).toBe(4);
      expect(
        events(histories[1]!)[4]!.workflowExecutionContinuedAsNewEventAttributes!.newExecutionRunId,
      ).toBe(third);

      const secondStarted = startedAttributes(histories[1]!);
      expect(secondStarted.continuedExecutionRunId).toBe(first);
      expect(secondStarted.firstExecutionRunId).toBe(first);
      expect(secondStarted.originalExecutionRunId).toBe(second);
      expect(secondStarted.initiator).toBe(enums.ContinueAsNewInitiator.CONTINUE_AS_NEW_INITIATOR_WORKFLOW);
      const thirdStarted = startedAttributes(histories[2]!);
      expect(thirdStarted.continuedExecutionRunId).toBe(second);
      expect(thirdStarted.firstExecutionRunId).toBe(first);

      expect(await statusOf(runs[0]!)).toBe('CONTINUED_AS_NEW');
      expect(await statusOf(runs[1]!)).toBe('CONTINUED_AS_NEW');
      expect(await statusOf(runs[2]!)).toBe('COMPLETED');
      // Memo is carried over to the new runs.
      expect((await runs[2]!.describe()).memo).toEqual({ chain: 'kept' });
      // Without a run id the handle addresses the latest run.
      expect((await env.client.workflow.getHandle(workflowId).describe()).runId).toBe(third);
      // result() of a specific earlier run also follows the chain.
      expect(await env.client.workflow.getHandle(workflowId, second).result()).toEqual(runIds);
      for (const history of histories) await replay(history, workflowsFile);
    });
  });
});
