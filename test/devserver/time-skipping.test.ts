/**
 * Time skipping: the acceptance scenarios of sdk-typescript's test-testenvironment-timeskipping.ts against
 * `createTimeSkipping` with our executable, lock balance under concurrent `result()` calls, and unit tests of
 * the VirtualClock.
 */
import path from 'node:path';
import { WorkflowClient, WorkflowFailedError } from '@temporalio/client';
import { workflowInterceptorModules, type TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker, bundleWorkflowCode, type WorkflowBundleWithSourceMap } from '@temporalio/worker';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { VirtualClock } from '../../src/devserver/virtual-clock';
import { createTimeSkippingEnv, eventTypes, historyOf, uid } from './helpers';
import {
  assertFromWorkflow,
  asyncChildStarter,
  raceActivityAndTimer,
  sleeper,
  unblockSignal,
  waitOnSignalWithTimeout,
  type TimeActivities,
} from './workflows/time';

const workflowsPath = path.join(__dirname, 'workflows/time.ts');

let env: TestWorkflowEnvironment;
let bundle: WorkflowBundleWithSourceMap;

beforeAll(async () => {
  [env, bundle] = await Promise.all([
    createTimeSkippingEnv(),
    // As in the SDK's test: the testing package's interceptor turns AssertionError into a workflow failure.
    bundleWorkflowCode({ workflowsPath, workflowInterceptorModules, logger: quietLogger() }),
  ]);
});
afterAll(async () => {
  await env?.teardown();
});

function quietLogger() {
  const nothing = () => undefined;
  return { log: nothing, trace: nothing, debug: nothing, info: nothing, warn: nothing, error: nothing };
}

/** Runs `fn` with a worker polling a fresh task queue; the worker's activities call `env.sleep`. */
async function withWorker<T>(fn: (taskQueue: string) => Promise<T>): Promise<T> {
  const taskQueue = uid('ts');
  const activities: TimeActivities = { envSleep: (ms) => env.sleep(ms) };
  const worker = await Worker.create({
    connection: env.nativeConnection,
    taskQueue,
    workflowBundle: bundle,
    activities,
  });
  return await worker.runUntil(fn(taskQueue));
}

/** A workflow client that does NOT unlock time skipping around result(): with it, time runs at wall pace. */
function plainClient(): WorkflowClient {
  return new WorkflowClient({ connection: env.connection, namespace: env.namespace });
}

async function timed<T>(fn: () => Promise<T>): Promise<{ value: T; ms: number }> {
  const t0 = performance.now();
  const value = await fn();
  return { value, ms: performance.now() - t0 };
}

describe('createTimeSkipping acceptance scenarios (sdk-typescript test-testenvironment-timeskipping.ts)', () => {
  it('(1) a 1,000,000 ms workflow sleep finishes fast', async () => {
    await withWorker(async (taskQueue) => {
      const { value, ms } = await timed(() =>
        env.client.workflow.execute(sleeper, { workflowId: uid('sleep'), taskQueue, args: [1_000_000] }),
      );
      expect(value).toBe(1_000_000);
      expect(ms).toBeLessThan(10_000);
    });
  });

  it('(2) normal and skipped time alternate', async () => {
    await withWorker(async (taskQueue) => {
      const normal = async () => {
        // Locked (nobody awaits through the time-skipping client): the timer takes real time.
        const handle = await env.client.workflow.start(sleeper, {
          workflowId: uid('normal'),
          taskQueue,
          args: [1_000],
        });
        const { value, ms } = await timed(() =>
          plainClient().result<typeof sleeper>(handle.workflowId, handle.firstExecutionRunId),
        );
        expect(value).toBe(1_000);
        expect(ms).toBeGreaterThanOrEqual(900);
      };
      const skipped = async () => {
        const { value, ms } = await timed(() =>
          env.client.workflow.execute(sleeper, { workflowId: uid('skipped'), taskQueue, args: [1_000_000] }),
        );
        expect(value).toBe(1_000_000);
        expect(ms).toBeLessThan(1_000_000);
        expect(ms).toBeLessThan(10_000);
      };
      await normal();
      await skipped();
      await normal();
      const before = await env.currentTimeMs();
      const { ms } = await timed(() => env.sleep(1_000_000));
      expect(ms).toBeLessThan(10_000);
      expect((await env.currentTimeMs()) - before).toBeGreaterThanOrEqual(1_000_000);
      await skipped();
      await normal();
    });
  });

  it('(3) an activity that calls env.sleep races a workflow timer: the shorter one wins', async () => {
    await withWorker(async (taskQueue) => {
      const run = (expectedWinner: 'timer' | 'activity') =>
        env.client.workflow.execute(raceActivityAndTimer, {
          workflowId: uid(`race-${expectedWinner}`),
          taskQueue,
          args: [expectedWinner],
        });
      const { value: first, ms } = await timed(() => run('activity'));
      expect(first).toBe('activity');
      expect(await run('timer')).toBe('timer');
      expect(ms).toBeLessThan(20_000);
      // The SDK's test notes that 'timer' before 'activity' hangs on the Java test server (an activity that
      // outlives the winning timer left time locked). It must not here.
      expect(await run('activity')).toBe('activity');
    });
  });

  it('(4) env.sleep(1e6) before a signal, then result()', async () => {
    await withWorker(async (taskQueue) => {
      const handle = await env.client.workflow.start(waitOnSignalWithTimeout, {
        workflowId: uid('signal'),
        taskQueue,
      });
      const before = await env.currentTimeMs();
      const { ms } = await timed(() => env.sleep(1_000_000)); // time is skipped, but not past the 2,000,000 ms timer
      expect(ms).toBeLessThan(10_000);
      const after = await env.currentTimeMs();
      expect(after - before).toBeGreaterThanOrEqual(1_000_000);
      expect(after - before).toBeLessThan(2_000_000);
      await handle.signal(unblockSignal);
      expect(await handle.result()).toBe('unblocked'); // time is skipped
    });
  });

  it('(5) an assertion failure inside the workflow surfaces as WorkflowFailedError', async () => {
    const err = await withWorker((taskQueue) =>
      env.client.workflow.execute(assertFromWorkflow, { workflowId: uid('assert'), taskQueue, args: [6] }),
    ).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(WorkflowFailedError);
    expect((err as WorkflowFailedError).cause?.message).toBe(
      'Expected values to be strictly equal:\n\n6 !== 7\n',
    );
  });

  it('(6) an ABANDONed child timer is fast-forwarded while awaiting its result', async () => {
    await withWorker(async (taskQueue) => {
      const childWorkflowId = uid('child');
      await env.client.workflow.execute(asyncChildStarter, {
        workflowId: uid('parent'),
        taskQueue,
        args: [childWorkflowId],
      });
      const { value, ms } = await timed(() =>
        env.client.workflow.getHandle<typeof sleeper>(childWorkflowId).result(),
      );
      expect(value).toBe(86_400_000);
      expect(ms).toBeLessThan(10_000);
    });
  });
});

describe('time-skipping lock accounting through the TestService', () => {
  it('env.currentTimeMs() advances by the skipped amount', async () => {
    const before = await env.currentTimeMs();
    const { ms } = await timed(() => env.sleep(5_000_000));
    const after = await env.currentTimeMs();
    expect(after - before).toBeGreaterThanOrEqual(5_000_000);
    // Only the skipped amount plus the real time that passed (and the ms rounding of the Timestamp).
    expect(after - before).toBeLessThanOrEqual(5_000_000 + ms + 1_000);
    // And while locked, it follows the wall clock again.
    const t0 = await env.currentTimeMs();
    expect(t0).toBeGreaterThanOrEqual(after);
    expect(t0 - after).toBeLessThan(5_000);
  });

  it('two concurrent result() calls keep the lock balance: a later single result() still skips, and time is locked after', async () => {
    await withWorker(async (taskQueue) => {
      const a = await env.client.workflow.start(sleeper, {
        workflowId: uid('conc-a'),
        taskQueue,
        args: [1_000_000],
      });
      const b = await env.client.workflow.start(sleeper, {
        workflowId: uid('conc-b'),
        taskQueue,
        args: [2_000_000],
      });
      const { value, ms } = await timed(() => Promise.all([a.result(), b.result()]));
      expect(value).toEqual([1_000_000, 2_000_000]);
      expect(ms).toBeLessThan(10_000);
      // While the count was below zero, outstanding workflow tasks must still have held time still: no task
      // may have been timed out by a jump past its start-to-close timeout.
      for (const handle of [a, b]) {
        expect(eventTypes(await historyOf(handle))).not.toContain('WorkflowTaskTimedOut');
      }
      // Balanced back to one lock: a single result() still skips ...
      const { value: single, ms: singleMs } = await timed(() =>
        env.client.workflow.execute(sleeper, { workflowId: uid('conc-c'), taskQueue, args: [3_000_000] }),
      );
      expect(single).toBe(3_000_000);
      expect(singleMs).toBeLessThan(10_000);
      // ... and, outside result(), time is locked again (no lock leaked away): a timer takes real time.
      const handle = await env.client.workflow.start(sleeper, {
        workflowId: uid('conc-d'),
        taskQueue,
        args: [800],
      });
      const { ms: lockedMs } = await timed(() =>
        plainClient().result<typeof sleeper>(handle.workflowId, handle.firstExecutionRunId),
      );
      expect(lockedMs).toBeGreaterThanOrEqual(700);
    });
  });
});

describe('VirtualClock', () => {
  const clocks: VirtualClock[] = [];
  const makeClock = (options: ConstructorParameters<typeof VirtualClock>[0]) => {
    const clock = new VirtualClock(options);
    clocks.push(clock);
    return clock;
  };
  afterEach(() => {
    for (const clock of clocks.splice(0)) clock.close();
  });

  /** Lets the clock's setImmediate pump run a few times. */
  const settle = async () => {
    for (let i = 0; i < 5; i++) await new Promise((resolve) => setImmediate(resolve));
  };

  it('starts locked in time-skipping mode: timers wait for real time', async () => {
    const clock = makeClock({ timeSkipping: true });
    expect(clock.diagnostics().lockCount).toBe(1);
    const fired: string[] = [];
    clock.after(1_000_000, () => fired.push('t'));
    await settle();
    expect(fired).toEqual([]);
    expect(Math.abs(clock.now() - Date.now())).toBeLessThan(50);
  });

  it('jumps to the next timer once the count reaches 0, in order, and only as far as the timers', async () => {
    const clock = makeClock({ timeSkipping: true });
    const start = clock.now();
    const fired: [string, number][] = [];
    // 'b' and 'b2' share one absolute deadline, so they must fire in the order they were scheduled.
    // (Computing b's deadline with after() would read the real clock again, and a millisecond passing
    // between the two reads would put b after b2.)
    clock.schedule(start + 2_000_000, () => fired.push(['b', clock.now()]));
    clock.after(1_000_000, () => fired.push(['a', clock.now()]));
    clock.schedule(start + 2_000_000, () => fired.push(['b2', clock.now()]));
    clock.unlock();
    await settle();
    expect(fired.map(([n]) => n)).toEqual(['a', 'b', 'b2']);
    expect(fired[0]![1] - start).toBeGreaterThanOrEqual(1_000_000);
    expect(fired[0]![1] - start).toBeLessThan(1_000_000 + 1_000);
    expect(fired[2]![1] - start).toBeLessThan(2_000_000 + 1_000);
    // Nothing queued any more: no further jumps.
    const now = clock.now();
    await settle();
    expect(clock.now() - now).toBeLessThan(50);
  });

  it('does not jump while any lock or hold is outstanding; a hold releases only once', async () => {
    const clock = makeClock({ timeSkipping: true, startLocked: false });
    expect(clock.diagnostics().lockCount).toBe(0);
    const fired: string[] = [];
    const work = clock.hold('workflow task');
    clock.lock();
    clock.after(1_000_000, () => fired.push('t'));
    expect(clock.diagnostics()).toMatchObject({
      lockCount: 1,
      holds: 1,
      holders: { 'workflow task': 1 },
      queuedTimers: 1,
    });
    clock.unlock();
    await settle();
    expect(fired).toEqual([]);
    work.release();
    work.release(); // idempotent: must not unlock twice
    expect(clock.diagnostics()).toMatchObject({ lockCount: 0, holds: 0, holders: {} });
    await settle();
    expect(fired).toEqual(['t']);
  });

  it('a released double-hold keeps the other holder counted', () => {
    const clock = makeClock({ timeSkipping: true, startLocked: false });
    const one = clock.hold('activity');
    const two = clock.hold('activity');
    one.release();
    expect(clock.diagnostics()).toMatchObject({ lockCount: 0, holds: 1, holders: { activity: 1 } });
    two.release();
    expect(clock.diagnostics()).toMatchObject({ lockCount: 0, holds: 0, holders: {} });
  });

  it('cancelled timers never fire and are not jumped to', async () => {
    const clock = makeClock({ timeSkipping: true });
    const start = clock.now();
    const fired: string[] = [];
    const cancelled = clock.after(1_000_000, () => fired.push('cancelled'));
    clock.after(3_000_000, () => fired.push('kept'));
    cancelled.cancel();
    expect(clock.diagnostics().queuedTimers).toBe(1);
    clock.unlock();
    await settle();
    expect(fired).toEqual(['kept']);
    expect(clock.now() - start).toBeGreaterThanOrEqual(3_000_000);

    // Only a cancelled timer queued: the clock must stay where it is.
    const clock2 = makeClock({ timeSkipping: true });
    const start2 = clock2.now();
    clock2.after(5_000_000, () => fired.push('never')).cancel();
    clock2.unlock();
    await settle();
    expect(fired).toEqual(['kept']);
    expect(clock2.now() - start2).toBeLessThan(1_000);
  });

  it('unlockWithSleep skips when nothing else holds time, re-locks, and waits for real time otherwise', async () => {
    const clock = makeClock({ timeSkipping: true });
    const start = clock.now();
    const { ms } = await timed(() => clock.unlockWithSleep(1_000_000));
    expect(ms).toBeLessThan(1_000);
    expect(clock.now() - start).toBeGreaterThanOrEqual(1_000_000);
    expect(clock.diagnostics()).toMatchObject({ lockCount: 1, sleeps: 0 }); // re-locked
    // With work outstanding, the sleep runs at wall pace.
    const work = clock.hold('activity');
    const { ms: realMs } = await timed(() => clock.unlockWithSleep(150));
    expect(realMs).toBeGreaterThanOrEqual(140);
    work.release();
    expect(clock.diagnostics().lockCount).toBe(1);
  });

  it("unlockWithSleep from inside an activity offsets that activity's own lock (env.sleep in an activity)", async () => {
    const clock = makeClock({ timeSkipping: true });
    clock.unlock(); // the test awaits result()
    const activity = clock.hold('activity');
    const fired: string[] = [];
    clock.after(1_500_000, () => fired.push('workflow timer'));
    await settle();
    expect(fired).toEqual([]); // the activity holds time
    const start = clock.now();
    const { ms } = await timed(() => clock.unlockWithSleep(1_000_000));
    expect(ms).toBeLessThan(1_000);
    expect(clock.now() - start).toBeGreaterThanOrEqual(1_000_000);
    expect(fired).toEqual([]); // the sleep was the earlier timer, and it re-locked
    expect(clock.diagnostics()).toMatchObject({ lockCount: 0, holds: 1, sleeps: 0 });
    activity.release();
    await settle();
    expect(fired).toEqual(['workflow timer']);
  });

  it('unlockWithSleep ends early and re-locks when its caller goes away', async () => {
    const clock = makeClock({ timeSkipping: true });
    const work = clock.hold('workflow task'); // keeps time from jumping
    const abort = new AbortController();
    const sleeping = clock.unlockWithSleep(10_000_000, abort.signal);
    await settle();
    abort.abort();
    await sleeping;
    work.release();
    expect(clock.diagnostics()).toMatchObject({ lockCount: 1, holds: 0, sleeps: 0, queuedTimers: 0 });
  });

  it('a count below zero does not cancel out outstanding work: a hold still stops time', async () => {
    const clock = makeClock({ timeSkipping: true });
    clock.unlock();
    clock.unlock(); // two overlapping result() calls: -1
    const work = clock.hold('workflow task');
    const fired: string[] = [];
    clock.after(10_000, () => fired.push('workflow task timeout'));
    await settle();
    expect(fired).toEqual([]);
    expect(clock.diagnostics()).toMatchObject({ lockCount: -1, holds: 1 });
    work.release();
    await settle();
    expect(fired).toEqual(['workflow task timeout']);
  });

  it('an unbalanced extra unlock goes below zero and is balanced by later locks', async () => {
    const clock = makeClock({ timeSkipping: true });
    clock.unlock();
    clock.unlock(); // two overlapping result() calls
    expect(clock.diagnostics().lockCount).toBe(-1);
    clock.lock();
    clock.lock();
    expect(clock.diagnostics().lockCount).toBe(1);
    const fired: string[] = [];
    clock.after(1_000_000, () => fired.push('t'));
    await settle();
    expect(fired).toEqual([]); // locked again
  });

  it('a throwing timer callback is reported and the clock keeps going', async () => {
    const errors: unknown[] = [];
    const clock = makeClock({ timeSkipping: true, onError: (err) => errors.push(err) });
    const fired: string[] = [];
    clock.after(10, () => {
      throw new Error('boom');
    });
    clock.after(20, () => fired.push('after'));
    clock.unlock();
    await settle();
    expect(errors).toHaveLength(1);
    expect(fired).toEqual(['after']);
  });

  it('in real-time mode never skips, whatever the lock count', async () => {
    const clock = makeClock({ timeSkipping: false });
    expect(clock.diagnostics().lockCount).toBe(0);
    const fired: string[] = [];
    clock.after(1_000_000, () => fired.push('t'));
    clock.unlock();
    await settle();
    expect(fired).toEqual([]);
    expect(Math.abs(clock.now() - Date.now())).toBeLessThan(50);
    // Short timers fire by the wall clock.
    await new Promise<void>((resolve) => clock.after(30, resolve));
  });
});
