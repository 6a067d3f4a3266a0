/**
 * Activities of the activity / timer / marker conformance tests (activities.test.ts, timers-markers.test.ts).
 * They run in the test process, so they can tell the test when they have started.
 */
import { ApplicationFailure, Context } from '@temporalio/activity';

const startedWorkflows = new Set<string>();
const startWaiters = new Map<string, () => void>();

/** Resolves once `heartbeatUntilCancelled` has started for the given workflow id. */
export function activityStartedFor(workflowId: string): Promise<void> {
  if (startedWorkflows.has(workflowId)) return Promise.resolve();
  return new Promise((resolve) => startWaiters.set(workflowId, resolve));
}

function markStarted(): void {
  const workflowId = Context.current().info.workflowExecution?.workflowId ?? '';
  startedWorkflows.add(workflowId);
  startWaiters.get(workflowId)?.();
  startWaiters.delete(workflowId);
}

function attempt(): number {
  return Context.current().info.attempt;
}

export function echo(value: string): Promise<string> {
  return Promise.resolve(value);
}

/** Fails every attempt with a retryable error. */
export function alwaysFail(): Promise<never> {
  return Promise.reject(new Error(`activity attempt ${attempt()} failed`));
}

/** Fails with a retryable error until attempt `succeedOn`, then returns the attempt number. */
export function failUntilAttempt(succeedOn: number): Promise<number> {
  if (attempt() < succeedOn) return Promise.reject(new Error(`activity attempt ${attempt()} failed`));
  return Promise.resolve(attempt());
}

export function failNonRetryable(): Promise<never> {
  return Promise.reject(
    ApplicationFailure.nonRetryable(`non-retryable on attempt ${attempt()}`, 'FatalError'),
  );
}

/** A retryable ApplicationFailure of the given type (the retry policy may list it as non-retryable). */
export function failWithType(type: string): Promise<never> {
  return Promise.reject(
    ApplicationFailure.create({ message: `failed with ${type} on attempt ${attempt()}`, type }),
  );
}

/** Sleeps (cancellably) for `ms` of wall time. */
export async function sleepFor(ms: number): Promise<string> {
  await Context.current().sleep(ms);
  return 'slept';
}

/** Heartbeats once, then stops heartbeating and sleeps (cancellably). */
export async function heartbeatOnceThenStall(ms: number): Promise<string> {
  Context.current().heartbeat('once');
  await Context.current().sleep(ms);
  return 'stalled';
}

/** Fails attempt 1 at once, later attempts sleep (cancellably) for `ms`. */
export async function failFirstThenSleep(ms: number): Promise<string> {
  if (attempt() === 1)
    throw ApplicationFailure.create({ message: 'first attempt failed', type: 'FirstAttempt' });
  await Context.current().sleep(ms);
  return 'slept';
}

export interface ResumeReport {
  attempt: number;
  resumedFrom: number;
  reached: number;
}

/**
 * Counts from the last heartbeat checkpoint (or 0) to `total`, heartbeating each step; attempt 1 fails right
 * after checkpointing `failAt`.
 */
export function resumable(total: number, failAt: number): Promise<ResumeReport> {
  const ctx = Context.current();
  const details: unknown = ctx.info.heartbeatDetails;
  const resumedFrom = typeof details === 'number' ? details : 0;
  let i = resumedFrom;
  for (; i < total; i++) {
    ctx.heartbeat(i);
    if (ctx.info.attempt === 1 && i === failAt)
      return Promise.reject(new Error(`attempt 1 failed at step ${i}`));
  }
  return Promise.resolve({ attempt: ctx.info.attempt, resumedFrom, reached: i });
}

/** Tells the test it started, then heartbeats until cancelled (rethrowing the CancelledFailure). */
export async function heartbeatUntilCancelled(): Promise<string> {
  const ctx = Context.current();
  markStarted();
  for (;;) {
    ctx.heartbeat();
    await ctx.sleep(100);
  }
}
