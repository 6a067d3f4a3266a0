/**
 * Activity conformance on the time-skipping embedded server: results and errors as the SDK sees them, and the
 * exact event-type sequences the real Temporal server writes (started-at-close, retries without events,
 * the four timeouts, heartbeat details across attempts, cancellation). Every produced history is replayed.
 */
import path from 'node:path';
import type { WorkflowHandle } from '@temporalio/client';
import { WorkflowFailedError } from '@temporalio/client';
import { ActivityFailure, ApplicationFailure } from '@temporalio/common';
import { tsToMs } from '@temporalio/common/lib/time';
import { temporal } from '@temporalio/proto';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as activities from './activities-conformance';
import {
  bundle,
  createTimeSkippingEnv,
  eventTypeName,
  eventTypes,
  historyOf,
  referenceEventTypes,
  replay,
  runWithWorker,
  uid,
  type History,
} from './helpers';
import {
  cancelActivity,
  cancelRunningActivity,
  cancelUnstartedActivity,
  runActivity,
  type ActivityOutcome,
} from './workflows/activities';

const WORKFLOWS = path.join(__dirname, 'workflows/activities.ts');
const RetryState = temporal.api.enums.v1.RetryState;
const TimeoutType = temporal.api.enums.v1.TimeoutType;
type HistoryEvent = temporal.api.history.v1.IHistoryEvent;

let env: TestWorkflowEnvironment;

beforeAll(async () => {
  await bundle(WORKFLOWS);
  env = await createTimeSkippingEnv();
}, 60_000);

afterAll(async () => {
  await env?.teardown();
});

/** Runs `fn` with a worker polling a fresh task queue. */
function withWorker<T>(fn: (taskQueue: string) => Promise<T>): Promise<T> {
  return runWithWorker(env, { workflowsFile: WORKFLOWS, activities, queuePrefix: 'activities' }, fn);
}

function startRunActivity(
  taskQueue: string,
  args: Parameters<typeof runActivity>,
): Promise<WorkflowHandle<typeof runActivity>> {
  return env.client.workflow.start(runActivity, { taskQueue, workflowId: uid('act'), args });
}

/** Fetches the history, replays it with the same workflow code and returns it. */
async function checkedHistory(handle: WorkflowHandle): Promise<History> {
  const history = await historyOf(handle);
  await replay(history, WORKFLOWS, handle.workflowId);
  return history;
}

function eventsOf(history: History, type: string): HistoryEvent[] {
  return (history.events ?? []).filter((e) => eventTypeName(e.eventType) === type);
}

function only(history: History, type: string): HistoryEvent {
  const events = eventsOf(history, type);
  expect(events, `exactly one ${type}`).toHaveLength(1);
  return events[0]!;
}

function eventTimeMs(event: HistoryEvent): number {
  return tsToMs(event.eventTime);
}

function failed(outcome: ActivityOutcome) {
  if (outcome.ok)
    throw new Error(`expected the activity to fail, it returned ${JSON.stringify(outcome.value)}`);
  return outcome.chain;
}

const SUCCESS_SEQUENCE = [
  'WorkflowExecutionStarted',
  'WorkflowTaskScheduled',
  'WorkflowTaskStarted',
  'WorkflowTaskCompleted',
  'ActivityTaskScheduled',
  'ActivityTaskStarted',
  'ActivityTaskCompleted',
  'WorkflowTaskScheduled',
  'WorkflowTaskStarted',
  'WorkflowTaskCompleted',
  'WorkflowExecutionCompleted',
];

/** An activity that closes with `closing` and lets the workflow complete (it caught the failure). */
function closedActivitySequence(closing: string, started = true): string[] {
  return [
    'WorkflowExecutionStarted',
    'WorkflowTaskScheduled',
    'WorkflowTaskStarted',
    'WorkflowTaskCompleted',
    'ActivityTaskScheduled',
    ...(started ? ['ActivityTaskStarted'] : []),
    closing,
    'WorkflowTaskScheduled',
    'WorkflowTaskStarted',
    'WorkflowTaskCompleted',
    'WorkflowExecutionCompleted',
  ];
}

describe('activity success', () => {
  it('writes Scheduled, then Started and Completed together, and the result reaches the workflow', async () => {
    await withWorker(async (taskQueue) => {
      const handle = await startRunActivity(taskQueue, [
        'echo',
        ['hello'],
        { startToCloseTimeout: '10s' },
        false,
      ]);
      expect(await handle.result()).toEqual({ ok: true, value: 'hello' });
      const history = await checkedHistory(handle);
      expect(eventTypes(history)).toEqual(SUCCESS_SEQUENCE);
      const scheduled = only(history, 'ActivityTaskScheduled');
      const started = only(history, 'ActivityTaskStarted');
      const completed = only(history, 'ActivityTaskCompleted');
      expect(Number(scheduled.eventId)).toBe(5);
      expect(Number(scheduled.activityTaskScheduledEventAttributes?.workflowTaskCompletedEventId)).toBe(4);
      expect(Number(started.activityTaskStartedEventAttributes?.scheduledEventId)).toBe(5);
      expect(started.activityTaskStartedEventAttributes?.attempt).toBe(1);
      expect(Number(completed.activityTaskCompletedEventAttributes?.scheduledEventId)).toBe(5);
      expect(Number(completed.activityTaskCompletedEventAttributes?.startedEventId)).toBe(
        Number(started.eventId),
      );
    });
  });
});

describe('activity retries', () => {
  it('exhausts maximumAttempts: one Started (attempt 5) and Failed{MaximumAttemptsReached}, like the real server', async () => {
    await withWorker(async (taskQueue) => {
      const handle = await startRunActivity(taskQueue, [
        'alwaysFail',
        [],
        {
          startToCloseTimeout: '60s',
          retry: { initialInterval: '1s', backoffCoefficient: 1, maximumAttempts: 5 },
        },
        false,
      ]);
      const err: unknown = await handle.result().catch((e: unknown) => e);
      expect(err).toBeInstanceOf(WorkflowFailedError);
      const activityFailure = (err as WorkflowFailedError).cause;
      expect(activityFailure).toBeInstanceOf(ActivityFailure);
      expect((activityFailure as ActivityFailure).retryState).toBe('MAXIMUM_ATTEMPTS_REACHED');
      expect((activityFailure as ActivityFailure).activityType).toBe('alwaysFail');
      const appFailure = activityFailure?.cause as Error | undefined;
      expect(appFailure).toBeInstanceOf(ApplicationFailure);
      expect(appFailure?.message).toBe('activity attempt 5 failed');

      const history = await checkedHistory(handle);
      expect(eventTypes(history)).toEqual(
        referenceEventTypes('features__retry_on_error__history.go.v1.5.0.json'),
      );
      const started = only(history, 'ActivityTaskStarted').activityTaskStartedEventAttributes;
      expect(started?.attempt).toBe(5);
      expect(started?.lastFailure?.message).toBe('activity attempt 4 failed');
      const failedEvent = only(history, 'ActivityTaskFailed').activityTaskFailedEventAttributes;
      expect(failedEvent?.retryState).toBe(RetryState.RETRY_STATE_MAXIMUM_ATTEMPTS_REACHED);
      expect(failedEvent?.failure?.message).toBe('activity attempt 5 failed');
    });
  });

  it('succeeds on the third attempt with no events for the failed attempts', async () => {
    await withWorker(async (taskQueue) => {
      const handle = await startRunActivity(taskQueue, [
        'failUntilAttempt',
        [3],
        { startToCloseTimeout: '10s', retry: { initialInterval: '1s', maximumAttempts: 5 } },
        false,
      ]);
      expect(await handle.result()).toEqual({ ok: true, value: 3 });
      const history = await checkedHistory(handle);
      expect(eventTypes(history)).toEqual(SUCCESS_SEQUENCE);
      const started = only(history, 'ActivityTaskStarted').activityTaskStartedEventAttributes;
      expect(started?.attempt).toBe(3);
      expect(started?.lastFailure?.message).toBe('activity attempt 2 failed');
    });
  });

  it('does not retry a non-retryable ApplicationFailure', async () => {
    await withWorker(async (taskQueue) => {
      const handle = await startRunActivity(taskQueue, [
        'failNonRetryable',
        [],
        { startToCloseTimeout: '10s', retry: { initialInterval: '1s', maximumAttempts: 5 } },
        true,
      ]);
      const chain = failed(await handle.result());
      expect(chain[0]).toMatchObject({ kind: 'ActivityFailure', retryState: 'NON_RETRYABLE_FAILURE' });
      expect(chain[1]).toMatchObject({
        kind: 'ApplicationFailure',
        type: 'FatalError',
        nonRetryable: true,
        message: 'non-retryable on attempt 1',
      });
      const history = await checkedHistory(handle);
      expect(eventTypes(history)).toEqual(closedActivitySequence('ActivityTaskFailed'));
      expect(only(history, 'ActivityTaskStarted').activityTaskStartedEventAttributes?.attempt).toBe(1);
      expect(only(history, 'ActivityTaskFailed').activityTaskFailedEventAttributes?.retryState).toBe(
        RetryState.RETRY_STATE_NON_RETRYABLE_FAILURE,
      );
    });
  });

  it('does not retry an error type listed in nonRetryableErrorTypes', async () => {
    await withWorker(async (taskQueue) => {
      const handle = await startRunActivity(taskQueue, [
        'failWithType',
        ['Unrecoverable'],
        {
          startToCloseTimeout: '10s',
          retry: { initialInterval: '1s', maximumAttempts: 5, nonRetryableErrorTypes: ['Unrecoverable'] },
        },
        true,
      ]);
      const chain = failed(await handle.result());
      expect(chain[0]).toMatchObject({ kind: 'ActivityFailure', retryState: 'NON_RETRYABLE_FAILURE' });
      expect(chain[1]).toMatchObject({
        kind: 'ApplicationFailure',
        type: 'Unrecoverable',
        nonRetryable: false,
        message: 'failed with Unrecoverable on attempt 1',
      });
      const history = await checkedHistory(handle);
      expect(eventTypes(history)).toEqual(closedActivitySequence('ActivityTaskFailed'));
      expect(only(history, 'ActivityTaskStarted').activityTaskStartedEventAttributes?.attempt).toBe(1);
      expect(only(history, 'ActivityTaskFailed').activityTaskFailedEventAttributes?.retryState).toBe(
        RetryState.RETRY_STATE_NON_RETRYABLE_FAILURE,
      );
    });
  });

  it('honours the backoff (coefficient and maximumInterval) in workflow time, skipped in wall time', async () => {
    await withWorker(async (taskQueue) => {
      const hour = 3_600_000;
      const t0 = Date.now();
      // Backoffs: 1h, then 3h capped to 2h, then 9h capped to 2h = 5h before attempt 4.
      const handle = await startRunActivity(taskQueue, [
        'failUntilAttempt',
        [4],
        {
          startToCloseTimeout: '10s',
          retry: { initialInterval: '1h', backoffCoefficient: 3, maximumInterval: '2h', maximumAttempts: 5 },
        },
        false,
      ]);
      expect(await handle.result()).toEqual({ ok: true, value: 4 });
      expect(Date.now() - t0).toBeLessThan(15_000);
      const history = await checkedHistory(handle);
      expect(eventTypes(history)).toEqual(SUCCESS_SEQUENCE);
      expect(only(history, 'ActivityTaskStarted').activityTaskStartedEventAttributes?.attempt).toBe(4);
      const elapsed =
        eventTimeMs(only(history, 'ActivityTaskCompleted')) -
        eventTimeMs(only(history, 'ActivityTaskScheduled'));
      expect(elapsed).toBeGreaterThanOrEqual(5 * hour);
      // Not the uncapped 1h + 3h + 9h.
      expect(elapsed).toBeLessThan(6 * hour);
    });
  });
});

describe('activity timeouts', () => {
  it('startToClose: ActivityTaskTimedOut with TimeoutFailure START_TO_CLOSE', async () => {
    await withWorker(async (taskQueue) => {
      const handle = await startRunActivity(taskQueue, [
        'sleepFor',
        [10_000],
        { startToCloseTimeout: '1s', retry: { maximumAttempts: 1 } },
        true,
      ]);
      const chain = failed(await handle.result());
      expect(chain[0]).toMatchObject({ kind: 'ActivityFailure', retryState: 'MAXIMUM_ATTEMPTS_REACHED' });
      expect(chain[1]).toMatchObject({ kind: 'TimeoutFailure', timeoutType: 'START_TO_CLOSE' });
      const history = await checkedHistory(handle);
      expect(eventTypes(history)).toEqual(closedActivitySequence('ActivityTaskTimedOut'));
      const timedOut = only(history, 'ActivityTaskTimedOut').activityTaskTimedOutEventAttributes;
      expect(timedOut?.failure?.timeoutFailureInfo?.timeoutType).toBe(
        TimeoutType.TIMEOUT_TYPE_START_TO_CLOSE,
      );
      expect(timedOut?.retryState).toBe(RetryState.RETRY_STATE_MAXIMUM_ATTEMPTS_REACHED);
    });
  });

  it('a timeout on the final attempt records the previous attempt failure as its cause (as the real server)', async () => {
    await withWorker(async (taskQueue) => {
      const handle = await startRunActivity(taskQueue, [
        'failFirstThenSleep',
        [10_000],
        { startToCloseTimeout: '1s', retry: { initialInterval: '100ms', maximumAttempts: 2 } },
        true,
      ]);
      const chain = failed(await handle.result());
      expect(chain[0]).toMatchObject({ kind: 'ActivityFailure', retryState: 'MAXIMUM_ATTEMPTS_REACHED' });
      expect(chain[1]).toMatchObject({ kind: 'TimeoutFailure', timeoutType: 'START_TO_CLOSE' });
      const history = await checkedHistory(handle);
      expect(eventTypes(history)).toEqual(closedActivitySequence('ActivityTaskTimedOut'));
      expect(only(history, 'ActivityTaskStarted').activityTaskStartedEventAttributes?.attempt).toBe(2);
      const timedOut = only(history, 'ActivityTaskTimedOut').activityTaskTimedOutEventAttributes;
      expect(timedOut?.failure?.timeoutFailureInfo?.timeoutType).toBe(
        TimeoutType.TIMEOUT_TYPE_START_TO_CLOSE,
      );
      expect(timedOut?.failure?.cause?.applicationFailureInfo?.type).toBe('FirstAttempt');
    });
  });

  it('heartbeat: ActivityTaskTimedOut with TimeoutFailure HEARTBEAT carrying the last details', async () => {
    await withWorker(async (taskQueue) => {
      const handle = await startRunActivity(taskQueue, [
        'heartbeatOnceThenStall',
        [10_000],
        { startToCloseTimeout: '30s', heartbeatTimeout: '1s', retry: { maximumAttempts: 1 } },
        true,
      ]);
      const chain = failed(await handle.result());
      expect(chain[0]).toMatchObject({ kind: 'ActivityFailure' });
      expect(chain[1]).toMatchObject({
        kind: 'TimeoutFailure',
        timeoutType: 'HEARTBEAT',
        lastHeartbeatDetails: 'once',
      });
      const history = await checkedHistory(handle);
      expect(eventTypes(history)).toEqual(closedActivitySequence('ActivityTaskTimedOut'));
      expect(
        only(history, 'ActivityTaskTimedOut').activityTaskTimedOutEventAttributes?.failure?.timeoutFailureInfo
          ?.timeoutType,
      ).toBe(TimeoutType.TIMEOUT_TYPE_HEARTBEAT);
    });
  });

  it('scheduleToClose: ActivityTaskTimedOut with TimeoutFailure SCHEDULE_TO_CLOSE, caused by the last failure', async () => {
    await withWorker(async (taskQueue) => {
      // Attempt 1 fails at once; attempt 2 starts 500ms later and outlives the 3s schedule-to-close budget.
      const handle = await startRunActivity(taskQueue, [
        'failFirstThenSleep',
        [10_000],
        { scheduleToCloseTimeout: '3s', retry: { initialInterval: '500ms', backoffCoefficient: 1 } },
        true,
      ]);
      const chain = failed(await handle.result());
      expect(chain[0]).toMatchObject({ kind: 'ActivityFailure' });
      expect(chain[1]).toMatchObject({ kind: 'TimeoutFailure', timeoutType: 'SCHEDULE_TO_CLOSE' });
      // The TS SDK drops a TimeoutFailure's cause; the server records the last attempt's failure there.
      const history = await checkedHistory(handle);
      expect(eventTypes(history)).toEqual(closedActivitySequence('ActivityTaskTimedOut'));
      expect(only(history, 'ActivityTaskStarted').activityTaskStartedEventAttributes?.attempt).toBe(2);
      const timedOut = only(history, 'ActivityTaskTimedOut').activityTaskTimedOutEventAttributes;
      expect(timedOut?.failure?.timeoutFailureInfo?.timeoutType).toBe(
        TimeoutType.TIMEOUT_TYPE_SCHEDULE_TO_CLOSE,
      );
      expect(timedOut?.failure?.cause?.applicationFailureInfo?.type).toBe('FirstAttempt');
      expect(timedOut?.retryState).toBe(RetryState.RETRY_STATE_TIMEOUT);
    });
  });

  it('scheduleToStart: an activity on a task queue nobody polls times out without a Started event', async () => {
    await withWorker(async (taskQueue) => {
      const handle = await startRunActivity(taskQueue, [
        'echo',
        ['never'],
        { taskQueue: uid('unpolled'), scheduleToStartTimeout: '1s', startToCloseTimeout: '10s' },
        true,
      ]);
      const chain = failed(await handle.result());
      expect(chain[0]).toMatchObject({ kind: 'ActivityFailure' });
      expect(chain[1]).toMatchObject({ kind: 'TimeoutFailure', timeoutType: 'SCHEDULE_TO_START' });
      const history = await checkedHistory(handle);
      expect(eventTypes(history)).toEqual(closedActivitySequence('ActivityTaskTimedOut', false));
      const timedOut = only(history, 'ActivityTaskTimedOut').activityTaskTimedOutEventAttributes;
      expect(timedOut?.failure?.timeoutFailureInfo?.timeoutType).toBe(
        TimeoutType.TIMEOUT_TYPE_SCHEDULE_TO_START,
      );
      expect(Number(timedOut?.startedEventId)).toBe(0);
    });
  });
});

describe('heartbeat details', () => {
  it('carries the last heartbeat details of a failed attempt to the next attempt', async () => {
    await withWorker(async (taskQueue) => {
      const handle = await startRunActivity(taskQueue, [
        'resumable',
        [10, 3],
        { startToCloseTimeout: '10s', retry: { initialInterval: '1s', maximumAttempts: 3 } },
        false,
      ]);
      expect(await handle.result()).toEqual({ ok: true, value: { attempt: 2, resumedFrom: 3, reached: 10 } });
      const history = await checkedHistory(handle);
      expect(eventTypes(history)).toEqual(SUCCESS_SEQUENCE);
      const started = only(history, 'ActivityTaskStarted').activityTaskStartedEventAttributes;
      expect(started?.attempt).toBe(2);
      expect(started?.lastFailure?.message).toBe('attempt 1 failed at step 3');
    });
  });
});

describe('activity cancellation', () => {
  it('cancels a running heartbeating activity: CancelRequested, then Started and Canceled (like the real server)', async () => {
    await withWorker(async (taskQueue) => {
      const handle = await env.client.workflow.start(cancelRunningActivity, {
        taskQueue,
        workflowId: uid('cancel-running'),
      });
      await activities.activityStartedFor(handle.workflowId);
      await handle.signal(cancelActivity);
      const chain = failed(await handle.result());
      expect(chain[0]).toMatchObject({ kind: 'ActivityFailure' });
      expect(chain[1]).toMatchObject({ kind: 'CancelledFailure' });
      const history = await checkedHistory(handle);
      expect(eventTypes(history)).toEqual(
        referenceEventTypes('sdk-typescript__cancel_fake_progress_history.json'),
      );
      const requested = only(history, 'ActivityTaskCancelRequested');
      const started = only(history, 'ActivityTaskStarted');
      const canceled = only(history, 'ActivityTaskCanceled').activityTaskCanceledEventAttributes;
      expect(Number(canceled?.latestCancelRequestedEventId)).toBe(Number(requested.eventId));
      expect(Number(canceled?.startedEventId)).toBe(Number(started.eventId));
      expect(Number(canceled?.scheduledEventId)).toBe(5);
    });
  });

  it('cancels an activity that has not started: ActivityTaskCanceled is written at once', async () => {
    await withWorker(async (taskQueue) => {
      const handle = await env.client.workflow.start(cancelUnstartedActivity, {
        taskQueue,
        workflowId: uid('cancel-unstarted'),
        args: [uid('unpolled')],
      });
      const chain = failed(await handle.result());
      expect(chain[0]).toMatchObject({ kind: 'ActivityFailure' });
      expect(chain[1]).toMatchObject({ kind: 'CancelledFailure' });
      const history = await checkedHistory(handle);
      expect(eventTypes(history)).toEqual([
        'WorkflowExecutionStarted',
        'WorkflowTaskScheduled',
        'WorkflowTaskStarted',
        'WorkflowTaskCompleted',
        'ActivityTaskScheduled',
        'TimerStarted',
        'TimerFired',
        'WorkflowTaskScheduled',
        'WorkflowTaskStarted',
        'WorkflowTaskCompleted',
        'ActivityTaskCancelRequested',
        'ActivityTaskCanceled',
        'WorkflowTaskScheduled',
        'WorkflowTaskStarted',
        'WorkflowTaskCompleted',
        'WorkflowExecutionCompleted',
      ]);
      const requested = only(history, 'ActivityTaskCancelRequested');
      const canceled = only(history, 'ActivityTaskCanceled').activityTaskCanceledEventAttributes;
      expect(Number(canceled?.latestCancelRequestedEventId)).toBe(Number(requested.eventId));
      expect(Number(canceled?.startedEventId)).toBe(0);
      expect(Number(canceled?.scheduledEventId)).toBe(5);
    });
  });
});
