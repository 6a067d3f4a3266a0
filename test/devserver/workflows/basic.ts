import {
  proxyActivities,
  sleep,
  defineSignal,
  defineQuery,
  setHandler,
  condition,
} from '@temporalio/workflow';
import type * as activities from '../activities';

const { greet } = proxyActivities<typeof activities>({ startToCloseTimeout: '10s' });

export async function greetWorkflow(name: string): Promise<string> {
  return await greet(name);
}

export async function sleepWorkflow(ms: number): Promise<number> {
  await sleep(ms);
  return ms;
}

export const unblock = defineSignal<[string]>('unblock');
export const stateQuery = defineQuery<string>('state');

export async function signalWorkflow(): Promise<string> {
  let value = '';
  setHandler(unblock, (v) => {
    value = v;
  });
  setHandler(stateQuery, () => (value ? `got ${value}` : 'waiting'));
  await condition(() => value !== '');
  return value;
}

export async function childParentWorkflow(name: string): Promise<string> {
  const { executeChild } = await import('@temporalio/workflow');
  return await executeChild(greetWorkflow, { args: [name], workflowId: `${name}-child` });
}

/** Waits for a cancellation while an activity-free timer runs; returns whether it was cancelled. */
export async function cancellableWorkflow(): Promise<string> {
  const { CancellationScope, isCancellation } = await import('@temporalio/workflow');
  try {
    await CancellationScope.cancellable(() => sleep('1 day'));
    return 'slept';
  } catch (err) {
    if (isCancellation(err)) return 'cancelled';
    throw err;
  }
}
