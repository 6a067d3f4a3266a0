/** Benchmark workflows (bundled by bench/devserver.ts). */
import { proxyActivities } from '@temporalio/workflow';
import type * as activities from './activities';

const { echo } = proxyActivities<typeof activities>({ startToCloseTimeout: '30s' });

/** Scenario (a): one activity. */
export async function oneActivityWorkflow(input: string): Promise<string> {
  return await echo(input);
}

/** Scenario (b): `count` sequential activities (10 in the benchmark). */
export async function sequentialActivitiesWorkflow(input: string, count: number): Promise<string> {
  let value = input;
  for (let i = 0; i < count; i++) value = await echo(value);
  return value;
}
