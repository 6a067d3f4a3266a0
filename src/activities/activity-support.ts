/**
 * What every activity needs from its Temporal context, in one place: an idempotency key derived from the
 * workflow and activity ids (stable across retries of the same activity), the cancellation signal, and
 * progress heartbeats whose details let the next attempt resume.
 */
import { Context } from '@temporalio/activity';
import type { z } from 'zod';
import { FailureType, failure } from '../errors';

/** True when running inside an activity (false in plain unit tests of helpers). */
function inActivity(): boolean {
  try {
    Context.current();
    return true;
  } catch {
    return false;
  }
}

/**
 * A key that is the same for every attempt of this activity in this workflow run's chain, and different
 * for any other activity: `<workflowId>/<activityId>`, optionally with a suffix for sub-steps. Use it as
 * the Idempotency-Key of upstream requests and as the dedupe key of audit rows.
 */
export function idempotencyKey(suffix?: string): string {
  if (!inActivity()) throw new Error('idempotencyKey() must be called inside an activity');
  const info = Context.current().info;
  const workflowId = info.workflowExecution?.workflowId ?? info.activityId;
  const key = `${workflowId}/${info.activityId}`;
  return suffix ? `${key}/${suffix}` : key;
}

/** The activity's cancellation signal, or a signal that never aborts outside an activity. */
export function cancellationSignal(): AbortSignal {
  return inActivity() ? Context.current().cancellationSignal : new AbortController().signal;
}

/** Records progress; a no-op outside an activity. */
export function heartbeat(progress: unknown): void {
  if (inActivity()) Context.current().heartbeat(progress);
}

/** The details the previous attempt heartbeated last, to resume from; undefined on a first attempt. */
export function lastHeartbeat<T>(): T | undefined {
  return inActivity() ? (Context.current().info.heartbeatDetails as T | undefined) : undefined;
}

/** Sleeps `ms` or until the activity is cancelled (then rejects with the cancellation). */
export function sleepCancellable(ms: number): Promise<void> {
  if (inActivity()) return Context.current().sleep(ms);
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * Checks an activity's input against its schema; anything malformed is a non-retryable `InvalidInput`
 * naming each offending field (`limit: Too big: expected number to be <=500`).
 */
export function parseActivityInput<S extends z.ZodType>(
  schema: S,
  input: unknown,
  activity: string,
): z.output<S> {
  const parsed = schema.safeParse(input ?? {});
  if (parsed.success) return parsed.data;
  const issues = parsed.error.issues.map((i) => `${i.path.join('.') || '(input)'}: ${i.message}`);
  throw failure(FailureType.InvalidInput, `${activity}: invalid input: ${issues.join('; ')}`, {
    details: { activity, issues },
  });
}
