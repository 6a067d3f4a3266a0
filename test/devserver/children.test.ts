/**
 * Conformance of the embedded dev server (time-skipping mode) for child workflows, parent close policies and
 * signals / cancellation requests to external workflows. Histories are compared with the real-server
 * reference history of a child workflow and replayed.
 */
import path from 'node:path';
import { WorkflowFailedError, type WorkflowHandle } from '@temporalio/client';
import {
  ApplicationFailure,
  CancelledFailure,
  ChildWorkflowFailure,
  TerminatedFailure,
} from '@temporalio/common';
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
  cancelExternal,
  collectNotes,
  finishSignal,
  parentApprovesChild,
  parentCancelsChild,
  parentOfContinuingChild,
  parentOfFailingChild,
  parentReportsChildOutcome,
  parentStartsChildWithId,
  parentWithClosePolicy,
  signalExternal,
} from './workflows/lifecycle';

const workflowsFile = path.join(__dirname, 'workflows/lifecycle.ts');
const enums = temporal.api.enums.v1;

let env: TestWorkflowEnvironment;
/** The file's worker polls this queue; it runs (worker.runUntil) from beforeAll until afterAll. */
const sharedTaskQueue = uid('children');
let stopSharedWorker: () => void = () => undefined;
let sharedWorkerDone: Promise<void> = Promise.resolve();

beforeAll(async () => {
  Runtime.install({ logger: new DefaultLogger('WARN') });
  await bundle(workflowsFile);
  env = await createTimeSkippingEnv();
  const worker = await Worker.create({
    connection: env.nativeConnection,
    taskQueue: sharedTaskQueue,
    workflowBundle: await bundle(workflowsFile),
  });
  let stop!: () => void;
  const stopped = new Promise<void>((resolve) => (stop = resolve));
  stopSharedWorker = stop;
  sharedWorkerDone = worker.runUntil(stopped);
}, 60_000);

afterAll(async () => {
  stopSharedWorker();
  await sharedWorkerDone;
  await env?.teardown();
});

/** Runs `fn` against the file's worker (Worker.create costs about a second, so one serves all tests). */
async function withWorker<T>(fn: (taskQueue: string) => Promise<T>): Promise<T> {
  return await fn(sharedTaskQueue);
}

async function statusOf(handle: WorkflowHandle): Promise<string> {
  return (await handle.describe()).status.name;
}

function events(history: History): temporal.api.history.v1.IHistoryEvent[] {
  return history.events ?? [];
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
const task = [WTS, WTSt, WTC];
const firstTask = [WES, ...task];
/** The parent's events up to the task that handles ChildWorkflowExecutionStarted. */
const childStarted = [
  ...firstTask,
  'StartChildWorkflowExecutionInitiated',
  'ChildWorkflowExecutionStarted',
  ...task,
];

describe('child workflows', () => {
  it('a child that is signalled by its parent completes: the real server history shape', async () => {
    await withWorker(async (taskQueue) => {
      const workflowId = uid('parent');
      const parent = await env.client.workflow.start(parentApprovesChild, {
        taskQueue,
        workflowId,
        args: ['Temporal'],
      });
      expect(await parent.result()).toBe('Hello Temporal');
      const history = await historyOf(parent);
      expect(eventTypes(history)).toEqual(referenceEventTypes('sdk-typescript__signal_workflow_1_13_1.json'));

      const e = events(history);
      const initiated = e[4]!.startChildWorkflowExecutionInitiatedEventAttributes!;
      expect(initiated.workflowId).toBe(`${workflowId}-child`);
      expect(initiated.workflowType?.name).toBe('childAwaitingApproval');
      expect(initiated.parentClosePolicy).toBe(enums.ParentClosePolicy.PARENT_CLOSE_POLICY_TERMINATE);
      const started = e[5]!.childWorkflowExecutionStartedEventAttributes!;
      expect(Number(started.initiatedEventId)).toBe(5);
      const childRunId = started.workflowExecution?.runId;
      expect(childRunId).toBeTruthy();
      const signalInitiated = e[10]!.signalExternalWorkflowExecutionInitiatedEventAttributes!;
      expect(signalInitiated.signalName).toBe('approve');
      expect(signalInitiated.childWorkflowOnly).toBe(true);
      expect(Number(e[11]!.externalWorkflowExecutionSignaledEventAttributes!.initiatedEventId)).toBe(11);
      const completed = e[15]!.childWorkflowExecutionCompletedEventAttributes!;
      expect(Number(completed.initiatedEventId)).toBe(5);
      expect(Number(completed.startedEventId)).toBe(6);
      expect(Number(e[19]!.timerFiredEventAttributes!.startedEventId)).toBe(10);
      await replay(history, workflowsFile, workflowId);

      const child = env.client.workflow.getHandle(`${workflowId}-child`, childRunId ?? undefined);
      const childHistory = await historyOf(child);
      const childStartedAttrs = events(childHistory)[0]!.workflowExecutionStartedEventAttributes!;
      expect(childStartedAttrs.parentWorkflowExecution?.workflowId).toBe(workflowId);
      expect(childStartedAttrs.parentWorkflowExecution?.runId).toBe(parent.firstExecutionRunId);
      expect(Number(childStartedAttrs.parentInitiatedEventId)).toBe(5);
      expect(childStartedAttrs.rootWorkflowExecution?.workflowId).toBe(workflowId);
      const signaled = events(childHistory).find((ev) => ev.workflowExecutionSignaledEventAttributes);
      expect(signaled?.workflowExecutionSignaledEventAttributes?.signalName).toBe('approve');
      expect(signaled?.workflowExecutionSignaledEventAttributes?.externalWorkflowExecution?.workflowId).toBe(
        workflowId,
      );
      expect(eventTypes(childHistory).at(-1)).toBe('WorkflowExecutionCompleted');
      const childDescription = await child.describe();
      expect(childDescription.status.name).toBe('COMPLETED');
      expect(childDescription.parentExecution?.workflowId).toBe(workflowId);
      await replay(childHistory, workflowsFile);
    });
  });

  it('a failing child surfaces as ChildWorkflowFailure in the parent', async () => {
    await withWorker(async (taskQueue) => {
      const parent = await env.client.workflow.start(parentOfFailingChild, {
        taskQueue,
        workflowId: uid('parent-of-failing'),
        args: ['the child gave up'],
      });
      const failure = await failureOf(parent.result());
      expect(failure.cause).toBeInstanceOf(ChildWorkflowFailure);
      const childFailure = failure.cause as ChildWorkflowFailure;
      expect(childFailure.execution.workflowId).toBe(`${parent.workflowId}-child`);
      expect(childFailure.workflowType).toBe('childFailsLater');
      expect(childFailure.cause).toBeInstanceOf(ApplicationFailure);
      expect((childFailure.cause as ApplicationFailure).type).toBe('ChildError');
      expect(childFailure.cause?.message).toBe('the child gave up');
      const history = await historyOf(parent);
      expect(eventTypes(history)).toEqual([
        ...childStarted,
        'ChildWorkflowExecutionFailed',
        ...task,
        'WorkflowExecutionFailed',
      ]);
      await replay(history, workflowsFile, parent.workflowId);
      const child = env.client.workflow.getHandle(`${parent.workflowId}-child`);
      expect(await statusOf(child)).toBe('FAILED');
      await replay(await historyOf(child), workflowsFile);
    });
  });

  it('a child id that is already running fails the start in the parent', async () => {
    await withWorker(async (taskQueue) => {
      const childId = uid('taken');
      const existing = await env.client.workflow.start(collectNotes, { taskQueue, workflowId: childId });
      const parent = await env.client.workflow.start(parentStartsChildWithId, {
        taskQueue,
        workflowId: uid('parent-conflict'),
        args: [childId],
      });
      expect(await parent.result()).toBe(`already started: ${childId}`);
      const history = await historyOf(parent);
      expect(eventTypes(history)).toEqual([
        ...firstTask,
        'StartChildWorkflowExecutionInitiated',
        'StartChildWorkflowExecutionFailed',
        ...task,
        'WorkflowExecutionCompleted',
      ]);
      const failed = events(history)[5]!.startChildWorkflowExecutionFailedEventAttributes!;
      expect(failed.cause).toBe(
        enums.StartChildWorkflowExecutionFailedCause
          .START_CHILD_WORKFLOW_EXECUTION_FAILED_CAUSE_WORKFLOW_ALREADY_EXISTS,
      );
      expect(Number(failed.initiatedEventId)).toBe(5);
      await replay(history, workflowsFile);
      // The running workflow was not touched.
      expect((await existing.describe()).runId).toBe(existing.firstExecutionRunId);
      await existing.signal(finishSignal);
      expect(await existing.result()).toEqual([]);
    });
  });
});

describe('child cancellation and continue-as-new', () => {
  it('a parent cancels its child through a cancellation scope', async () => {
    await withWorker(async (taskQueue) => {
      const parent = await env.client.workflow.start(parentCancelsChild, {
        taskQueue,
        workflowId: uid('parent-cancels'),
      });
      expect(await parent.result()).toBe('child cancelled');
      const history = await historyOf(parent);
      expect(eventTypes(history)).toEqual([
        ...childStarted,
        'RequestCancelExternalWorkflowExecutionInitiated',
        'ExternalWorkflowExecutionCancelRequested',
        ...task,
        'ChildWorkflowExecutionCanceled',
        ...task,
        'WorkflowExecutionCompleted',
      ]);
      const e = events(history);
      const initiated = e[9]!.requestCancelExternalWorkflowExecutionInitiatedEventAttributes!;
      expect(initiated.workflowExecution?.workflowId).toBe(`${parent.workflowId}-child`);
      expect(initiated.childWorkflowOnly).toBe(true);
      const canceled = e[14]!.childWorkflowExecutionCanceledEventAttributes!;
      expect(Number(canceled.initiatedEventId)).toBe(5);
      expect(Number(canceled.startedEventId)).toBe(6);
      await replay(history, workflowsFile, parent.workflowId);

      const child = env.client.workflow.getHandle(`${parent.workflowId}-child`);
      expect(await statusOf(child)).toBe('CANCELLED');
      const childHistory = await historyOf(child);
      const cancelRequested = events(childHistory).find(
        (ev) => ev.workflowExecutionCancelRequestedEventAttributes,
      )?.workflowExecutionCancelRequestedEventAttributes;
      expect(cancelRequested?.externalWorkflowExecution?.workflowId).toBe(parent.workflowId);
      expect(Number(cancelRequested?.externalInitiatedEventId)).toBe(10);
      expect(eventTypes(childHistory).slice(-6)).toEqual([
        'TimerStarted',
        'TimerFired',
        ...task,
        'WorkflowExecutionCanceled',
      ]);
      await replay(childHistory, workflowsFile);
    });
  });

  it('a child that continues as new reports the result of its last run to the parent', async () => {
    await withWorker(async (taskQueue) => {
      const parent = await env.client.workflow.start(parentOfContinuingChild, {
        taskQueue,
        workflowId: uid('parent-of-continuing'),
      });
      const runIds = await parent.result();
      expect(runIds).toHaveLength(2);
      const history = await historyOf(parent);
      const types = eventTypes(history);
      expect(types.slice(0, 6)).toEqual([
        ...firstTask,
        'StartChildWorkflowExecutionInitiated',
        'ChildWorkflowExecutionStarted',
      ]);
      expect(types.filter((t) => t.startsWith('ChildWorkflowExecution'))).toEqual([
        'ChildWorkflowExecutionStarted',
        'ChildWorkflowExecutionCompleted',
      ]);
      expect(types.at(-1)).toBe('WorkflowExecutionCompleted');
      const started = events(history)[5]!.childWorkflowExecutionStartedEventAttributes!;
      expect(started.workflowExecution?.runId).toBe(runIds[0]);
      const completed = events(history).find(
        (ev) => ev.childWorkflowExecutionCompletedEventAttributes,
      )!.childWorkflowExecutionCompletedEventAttributes!;
      // The real server names the run that closed (recordchildworkflowcompleted: request.ChildExecution).
      expect(completed.workflowExecution?.runId).toBe(runIds[1]);
      await replay(history, workflowsFile, parent.workflowId);
      const lastRun = env.client.workflow.getHandle(`${parent.workflowId}-child`, runIds[1]);
      const lastStarted = events(await historyOf(lastRun))[0]!.workflowExecutionStartedEventAttributes!;
      expect(lastStarted.parentWorkflowExecution?.workflowId).toBe(parent.workflowId);
      expect(Number(lastStarted.parentInitiatedEventId)).toBe(5);
    });
  });
});

describe('child outcomes', () => {
  it('a child that times out surfaces as ChildWorkflowExecutionTimedOut', async () => {
    await withWorker(async (taskQueue) => {
      const parent = await env.client.workflow.start(parentReportsChildOutcome, {
        taskQueue,
        workflowId: uid('parent-child-timeout'),
        args: ['sleepFor'],
      });
      expect(await parent.result()).toBe('child timed out');
      const history = await historyOf(parent);
      expect(eventTypes(history)).toEqual([
        ...childStarted,
        'ChildWorkflowExecutionTimedOut',
        ...task,
        'WorkflowExecutionCompleted',
      ]);
      expect(
        Number(events(history)[9]!.childWorkflowExecutionTimedOutEventAttributes!.initiatedEventId),
      ).toBe(5);
      await replay(history, workflowsFile, parent.workflowId);
      const child = env.client.workflow.getHandle(`${parent.workflowId}-child`);
      expect(await statusOf(child)).toBe('TIMED_OUT');
      await replay(await historyOf(child), workflowsFile);
    });
  });

  it('a child terminated by a client surfaces as ChildWorkflowExecutionTerminated', async () => {
    await withWorker(async (taskQueue) => {
      const parent = await env.client.workflow.start(parentReportsChildOutcome, {
        taskQueue,
        workflowId: uid('parent-child-terminated'),
        args: ['collectNotes'],
      });
      await waitFor(
        async () => eventTypes(await historyOf(parent)).length === childStarted.length,
        'the parent to handle ChildWorkflowExecutionStarted',
      );
      await env.client.workflow.getHandle(`${parent.workflowId}-child`).terminate('from the test');
      expect(await parent.result()).toMatch(/^child terminated: /);
      const history = await historyOf(parent);
      expect(eventTypes(history)).toEqual([
        ...childStarted,
        'ChildWorkflowExecutionTerminated',
        ...task,
        'WorkflowExecutionCompleted',
      ]);
      await replay(history, workflowsFile, parent.workflowId);
    });
  });
});

describe('parent close policies', () => {
  it('TERMINATE terminates the child when the parent completes', async () => {
    await withWorker(async (taskQueue) => {
      const childId = uid('terminated-child');
      const parent = await env.client.workflow.start(parentWithClosePolicy, {
        taskQueue,
        workflowId: uid('parent-terminate'),
        args: ['TERMINATE', childId, 'collectNotes'],
      });
      const childRunId = await parent.result();
      const history = await historyOf(parent);
      expect(eventTypes(history)).toEqual([...childStarted, 'WorkflowExecutionCompleted']);
      await replay(history, workflowsFile);
      const child = env.client.workflow.getHandle(childId, childRunId);
      expect(await statusOf(child)).toBe('TERMINATED');
      const failure = await failureOf(child.result());
      expect(failure.cause).toBeInstanceOf(TerminatedFailure);
      const childHistory = await historyOf(child);
      expect(eventTypes(childHistory).at(-1)).toBe('WorkflowExecutionTerminated');
      await replay(childHistory, workflowsFile);
    });
  });

  it('REQUEST_CANCEL requests cancellation of the child when the parent completes', async () => {
    await withWorker(async (taskQueue) => {
      const childId = uid('cancelled-child');
      const parent = await env.client.workflow.start(parentWithClosePolicy, {
        taskQueue,
        workflowId: uid('parent-cancel'),
        args: ['REQUEST_CANCEL', childId, 'collectNotes'],
      });
      const childRunId = await parent.result();
      expect(eventTypes(await historyOf(parent))).toEqual([...childStarted, 'WorkflowExecutionCompleted']);
      const child = env.client.workflow.getHandle(childId, childRunId);
      const failure = await failureOf(child.result());
      expect(failure.cause).toBeInstanceOf(CancelledFailure);
      expect(await statusOf(child)).toBe('CANCELLED');
      const childHistory = await historyOf(child);
      const types = eventTypes(childHistory);
      expect(types).toContain('WorkflowExecutionCancelRequested');
      expect(types.slice(-4)).toEqual([...task, 'WorkflowExecutionCanceled']);
      await replay(childHistory, workflowsFile);
    });
  });

  it('ABANDON leaves the child running; its one-day timer is skipped while its result is awaited', async () => {
    await withWorker(async (taskQueue) => {
      const childId = uid('abandoned-child');
      const parent = await env.client.workflow.start(parentWithClosePolicy, {
        taskQueue,
        workflowId: uid('parent-abandon'),
        args: ['ABANDON', childId, 'sleepFor'],
      });
      const childRunId = await parent.result();
      const child = env.client.workflow.getHandle(childId, childRunId);
      expect(await statusOf(child)).toBe('RUNNING');
      const t0 = Date.now();
      expect(await child.result()).toBe('slept 1 day');
      expect(Date.now() - t0).toBeLessThan(10_000);
      const childHistory = await historyOf(child);
      expect(eventTypes(childHistory)).toEqual([
        ...firstTask,
        'TimerStarted',
        'TimerFired',
        ...task,
        'WorkflowExecutionCompleted',
      ]);
      const e = events(childHistory);
      const firedAt = Number(e[5]!.eventTime?.seconds);
      const startedAt = Number(e[4]!.eventTime?.seconds);
      expect(firedAt - startedAt).toBeGreaterThanOrEqual(86_400);
      await replay(childHistory, workflowsFile);
      // The parent's history shows no trace of the child's completion.
      expect(eventTypes(await historyOf(parent))).toEqual([...childStarted, 'WorkflowExecutionCompleted']);
    });
  });
});

describe('external workflows', () => {
  it('signalling a workflow that does not exist fails in the workflow', async () => {
    await withWorker(async (taskQueue) => {
      const handle = await env.client.workflow.start(signalExternal, {
        taskQueue,
        workflowId: uid('signal-missing'),
        args: [uid('nobody')],
      });
      expect(await handle.result()).toBe(
        'signal failed: Unable to signal external workflow because it was not found',
      );
      const history = await historyOf(handle);
      expect(eventTypes(history)).toEqual([
        ...firstTask,
        'SignalExternalWorkflowExecutionInitiated',
        'SignalExternalWorkflowExecutionFailed',
        ...task,
        'WorkflowExecutionCompleted',
      ]);
      const failed = events(history)[5]!.signalExternalWorkflowExecutionFailedEventAttributes!;
      expect(failed.cause).toBe(
        enums.SignalExternalWorkflowExecutionFailedCause
          .SIGNAL_EXTERNAL_WORKFLOW_EXECUTION_FAILED_CAUSE_EXTERNAL_WORKFLOW_EXECUTION_NOT_FOUND,
      );
      expect(Number(failed.initiatedEventId)).toBe(5);
      await replay(history, workflowsFile);
    });
  });

  it('signalling an existing external workflow delivers the signal', async () => {
    await withWorker(async (taskQueue) => {
      const target = await env.client.workflow.start(collectNotes, {
        taskQueue,
        workflowId: uid('signal-target'),
      });
      const sender = await env.client.workflow.start(signalExternal, {
        taskQueue,
        workflowId: uid('signal-sender'),
        args: [target.workflowId],
      });
      expect(await sender.result()).toBe('signaled');
      expect(eventTypes(await historyOf(sender))).toEqual([
        ...firstTask,
        'SignalExternalWorkflowExecutionInitiated',
        'ExternalWorkflowExecutionSignaled',
        ...task,
        'WorkflowExecutionCompleted',
      ]);
      await waitFor(
        async () => eventTypes(await historyOf(target)).includes('WorkflowExecutionSignaled'),
        'the signal in the target history',
      );
      await target.signal(finishSignal);
      expect(await target.result()).toEqual(['from a workflow']);
      await replay(await historyOf(sender), workflowsFile);
      await replay(await historyOf(target), workflowsFile);
    });
  });

  it('getExternalWorkflowHandle(id).cancel() cancels the external workflow', async () => {
    await withWorker(async (taskQueue) => {
      const target = await env.client.workflow.start(collectNotes, {
        taskQueue,
        workflowId: uid('cancel-target'),
      });
      const canceller = await env.client.workflow.start(cancelExternal, {
        taskQueue,
        workflowId: uid('canceller'),
        args: [target.workflowId],
      });
      expect(await canceller.result()).toBe('cancel requested');
      const history = await historyOf(canceller);
      expect(eventTypes(history)).toEqual([
        ...firstTask,
        'RequestCancelExternalWorkflowExecutionInitiated',
        'ExternalWorkflowExecutionCancelRequested',
        ...task,
        'WorkflowExecutionCompleted',
      ]);
      expect(
        Number(events(history)[5]!.externalWorkflowExecutionCancelRequestedEventAttributes!.initiatedEventId),
      ).toBe(5);
      await replay(history, workflowsFile);

      const failure = await failureOf(target.result());
      expect(failure.cause).toBeInstanceOf(CancelledFailure);
      expect(await statusOf(target)).toBe('CANCELLED');
      const targetHistory = await historyOf(target);
      const cancelRequested = events(targetHistory).find(
        (ev) => ev.workflowExecutionCancelRequestedEventAttributes,
      )?.workflowExecutionCancelRequestedEventAttributes;
      expect(cancelRequested?.externalWorkflowExecution?.workflowId).toBe(canceller.workflowId);
      expect(Number(cancelRequested?.externalInitiatedEventId)).toBe(5);
      expect(eventTypes(targetHistory).at(-1)).toBe('WorkflowExecutionCanceled');
      await replay(targetHistory, workflowsFile);
    });
  });
});
