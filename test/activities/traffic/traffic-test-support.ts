/**
 * Helpers shared by the traffic provider tests: asserting classified failures and running an activity in
 * a fresh MockActivityEnvironment.
 */
import { ApplicationFailure } from '@temporalio/common';
import { MockActivityEnvironment } from '@temporalio/testing';
import { DefaultLogger } from '@temporalio/worker';
import { expect } from 'vitest';

/** Activity failures are the point of most tests: log only errors of the SDK itself. */
export const quietLogger = new DefaultLogger('ERROR');

/** Runs one activity call in its own activity context. */
export function runActivity<I, O>(fn: (input: I) => Promise<O>, input: I): Promise<O> {
  return new MockActivityEnvironment(undefined, { logger: quietLogger }).run(fn, input);
}

/** Awaits a rejection and checks it is an ApplicationFailure of `type` with the right retryability. */
export async function expectFailure(
  promise: Promise<unknown>,
  type: string,
  nonRetryable: boolean,
): Promise<ApplicationFailure> {
  let caught: unknown;
  try {
    await promise;
  } catch (err) {
    caught = err;
  }
  expect(caught, `expected a ${type} failure`).toBeInstanceOf(ApplicationFailure);
  const f = caught as ApplicationFailure;
  expect({ type: f.type, nonRetryable: f.nonRetryable, message: f.message }).toMatchObject({
    type,
    nonRetryable,
  });
  return f;
}
