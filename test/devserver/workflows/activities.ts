/** Workflows of the activity / timer / marker conformance tests (activities.test.ts, timers-markers.test.ts). */
import {
  ActivityCancellationType,
  ActivityFailure,
  ApplicationFailure,
  CancellationScope,
  CancelledFailure,
  TimeoutFailure,
  condition,
  defineSignal,
  isCancellation,
  patched,
  proxyActivities,
  proxyLocalActivities,
  scheduleActivity,
  setHandler,
  sleep,
  upsertMemo,
  upsertSearchAttributes,
  type ActivityOptions,
} from '@temporalio/workflow';
import { defineSearchAttributeKey } from '@temporalio/common';
import type * as activities from '../activities-conformance';

/** One link of an error's cause chain, as seen by the workflow. */
export interface FailureLink {
  kind: string;
  message: string;
  type?: string;
  nonRetryable?: boolean;
  timeoutType?: string;
  lastHeartbeatDetails?: unknown;
  retryState?: string;
}

export type ActivityOutcome = { ok: true; value: unknown } | { ok: false; chain: FailureLink[] };

function describeFailure(err: unknown): FailureLink[] {
  const chain: FailureLink[] = [];
  let e: unknown = err;
  while (e instanceof Error && chain.length < 5) {
    const link: FailureLink = { kind: e.constructor.name, message: e.message };
    if (e instanceof ActivityFailure) {
      link.kind = 'ActivityFailure';
      link.retryState = e.retryState;
    } else if (e instanceof ApplicationFailure) {
      link.kind = 'ApplicationFailure';
      link.type = e.type ?? undefined;
      link.nonRetryable = e.nonRetryable ?? undefined;
    } else if (e instanceof TimeoutFailure) {
      link.kind = 'TimeoutFailure';
      link.timeoutType = e.timeoutType;
      link.lastHeartbeatDetails = e.lastHeartbeatDetails;
    } else if (e instanceof CancelledFailure) {
      link.kind = 'CancelledFailure';
    }
    chain.push(link);
    e = e.cause;
  }
  return chain;
}

/**
 * Runs one activity by name with the given options. With `catchFailure` the workflow returns the failure's
 * cause chain; without it, the failure fails the workflow.
 */
export async function runActivity(
  name: keyof typeof activities,
  args: unknown[],
  options: ActivityOptions,
  catchFailure: boolean,
): Promise<ActivityOutcome> {
  try {
    return { ok: true, value: await scheduleActivity(name, args, options) };
  } catch (err) {
    if (!catchFailure) throw err;
    return { ok: false, chain: describeFailure(err) };
  }
}

export const cancelActivity = defineSignal('cancelActivity');

/**
 * Starts a heartbeating activity and cancels it (waiting for the worker's confirmation) once signalled, like
 * sdk-typescript's `cancelFakeProgress`.
 */
export async function cancelRunningActivity(): Promise<ActivityOutcome> {
  let cancelRequested = false;
  setHandler(cancelActivity, () => {
    cancelRequested = true;
  });
  const { heartbeatUntilCancelled } = proxyActivities<typeof activities>({
    startToCloseTimeout: '60s',
    heartbeatTimeout: '1s',
    cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
  });
  const scope = new CancellationScope();
  const running = scope.run(() => heartbeatUntilCancelled());
  await condition(() => cancelRequested);
  scope.cancel();
  try {
    return { ok: true, value: await running };
  } catch (err) {
    if (!isCancellation(err)) throw err;
    return { ok: false, chain: describeFailure(err) };
  }
}

/** Schedules an activity on `taskQueue` (which nobody polls) and cancels it after a short timer. */
export async function cancelUnstartedActivity(taskQueue: string): Promise<ActivityOutcome> {
  const { echo } = proxyActivities<typeof activities>({
    taskQueue,
    startToCloseTimeout: '10s',
    cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
  });
  const scope = new CancellationScope();
  const pending = scope.run(() => echo('never runs'));
  await sleep(10);
  scope.cancel();
  try {
    return { ok: true, value: await pending };
  } catch (err) {
    if (!isCancellation(err)) throw err;
    return { ok: false, chain: describeFailure(err) };
  }
}

/** Timer and activity in one workflow task, then the timer is cancelled (sdk-typescript `langFlagsReplayCorrectly`). */
export async function timerAndActivity(): Promise<string> {
  const { echo } = proxyActivities<typeof activities>({ scheduleToCloseTimeout: '10s' });
  return await CancellationScope.withTimeout('10s', () => echo('in time'));
}

export async function sleeper(ms: number): Promise<number> {
  await sleep(ms);
  return ms;
}

export async function localActivity(value: string): Promise<string> {
  const { echo } = proxyLocalActivities<typeof activities>({ startToCloseTimeout: '10s' });
  return await echo(value);
}

export function patchedWorkflow(): Promise<string> {
  return Promise.resolve(patched('conformance-patch') ? 'patched' : 'original');
}

/** Upserts a Keyword search attribute (which must be registered in the namespace). */
export function upsertKeyword(name: string, value: string): Promise<string> {
  upsertSearchAttributes([{ key: defineSearchAttributeKey(name, 'KEYWORD'), value }]);
  return Promise.resolve(value);
}

export function upsertNote(note: string): Promise<string> {
  upsertMemo({ note });
  return Promise.resolve(note);
}
