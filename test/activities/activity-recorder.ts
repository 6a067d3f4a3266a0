/**
 * Runs activities in a `MockActivityEnvironment` and keeps every result and failure they produced, so a
 * test file can check at the end that no credential reached any of them.
 */
import { ApplicationFailure } from '@temporalio/common';
import type { MockActivityEnvironment } from '@temporalio/testing';
import { serialisedFailure } from '../../src/sandbox/fakes/scripted-http-server';

export interface ActivityRecorder {
  /** Every result and failure seen so far, serialised. */
  readonly seen: string[];
  /** Runs `fn` as an activity (in a fresh environment unless one is given) and records its result. */
  run: <R>(fn: () => Promise<R>, env?: MockActivityEnvironment) => Promise<R>;
  /** Awaits `promise`, which must fail with an `ApplicationFailure`; records and returns it. */
  failureOf: (promise: Promise<unknown>) => Promise<ApplicationFailure>;
}

export function activityRecorder(newEnv: () => MockActivityEnvironment): ActivityRecorder {
  const seen: string[] = [];
  return {
    seen,
    async run<R>(fn: () => Promise<R>, env = newEnv()): Promise<R> {
      const result = await env.run<[], R, () => Promise<R>>(fn);
      seen.push(JSON.stringify(result));
      return result;
    },
    async failureOf(promise: Promise<unknown>): Promise<ApplicationFailure> {
      try {
        const result = await promise;
        throw new Error(`expected a failure, got ${JSON.stringify(result)}`);
      } catch (err) {
        seen.push(serialisedFailure(err));
        if (!(err instanceof ApplicationFailure)) throw err;
        return err;
      }
    },
  };
}
