import { proxyActivities, sleep, defineSignal, defineQuery, setHandler, condition } from '@temporalio/workflow';
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
