/**
 * Workflows of the launcher, time-skipping, visibility and bad-input suites. The time-skipping ones mirror
 * sdk-typescript's packages/test/src/workflows/testenv-test-workflows.ts.
 */
import assert from 'assert';
import {
  condition,
  defineQuery,
  defineSignal,
  proxyActivities,
  setHandler,
  sleep,
  startChild,
} from '@temporalio/workflow';

/** Sleeps `ms` of workflow time and returns it. */
export async function sleeper(ms: number): Promise<number> {
  await sleep(ms);
  return ms;
}

export interface TimeActivities {
  /** Calls `env.sleep(ms)` of the test environment: unlocks time skipping while it sleeps. */
  envSleep(ms: number): Promise<void>;
}

const { envSleep } = proxyActivities<TimeActivities>({ startToCloseTimeout: 2_000_000 });

export const unblockSignal = defineSignal('unblock');

/** A workflow timer races an activity that sleeps with `env.sleep`; the shorter one must win. */
export async function raceActivityAndTimer(expectedWinner: 'timer' | 'activity'): Promise<string> {
  const timerShouldWin = expectedWinner === 'timer';
  const timerDuration = timerShouldWin ? 1_000_000 : 1_500_000;
  const activityDuration = timerShouldWin ? 1_500_000 : 1_000_000;
  const timerPromise = sleep(timerDuration).then(() => 'timer');
  const activityPromise = envSleep(activityDuration).then(() => 'activity');
  const winner = await Promise.race([timerPromise, activityPromise]);
  // As in the SDK's test: let the activity finish before the workflow does.
  await activityPromise;
  return winner;
}

/** Waits for `unblock`; fails if a 2,000,000 ms timer fires first. */
export async function waitOnSignalWithTimeout(): Promise<string> {
  await new Promise<void>((resolve, reject) => {
    setHandler(unblockSignal, resolve);
    void sleep(2_000_000).then(() => reject(new Error('sleep finished before receiving signal')));
  });
  return 'unblocked';
}

// eslint-disable-next-line @typescript-eslint/require-await -- a workflow function returns a promise
export async function assertFromWorkflow(x: number): Promise<void> {
  assert.strictEqual(x, 7);
}

/** Starts a one-day sleeper child with parentClosePolicy ABANDON and returns without waiting for it. */
export async function asyncChildStarter(childWorkflowId: string): Promise<void> {
  await startChild(sleeper, {
    args: [86_400_000],
    workflowId: childWorkflowId,
    parentClosePolicy: 'ABANDON',
  });
}

export const releaseSignal = defineSignal<[string]>('release');
export const stageQuery = defineQuery<string>('stage');

/** Waits for `release` and returns its argument. */
export async function waitForRelease(): Promise<string> {
  let value: string | undefined;
  setHandler(releaseSignal, (v) => {
    value = v;
  });
  setHandler(stageQuery, () => (value === undefined ? 'waiting' : `released ${value}`));
  await condition(() => value !== undefined);
  return value ?? '';
}

/** Completes at once with its argument. */
// eslint-disable-next-line @typescript-eslint/require-await -- a workflow function returns a promise
export async function quickWorkflow(value: string): Promise<string> {
  return value;
}
