/**
 * The release harness of one test file: started before its tests, stopped after them. The returned object
 * is filled in by `beforeAll`, so test bodies use it as the harness itself. (Separate from
 * release-harness.ts, which the benchmark imports outside vitest.)
 */
import type { WorkflowHandle } from '@temporalio/client';
import { afterAll, beforeAll } from 'vitest';
import type { ReleaseStatus } from '../../src/schemas/release';
import { qaResultSignal } from '../../src/workflows/definitions';
import {
  inPhase,
  startReleaseHarness,
  waitForStatus,
  type HarnessOptions,
  type ReleaseHarness,
} from './release-harness';

export function useReleaseHarness(options: HarnessOptions = {}): ReleaseHarness {
  const harness = {} as ReleaseHarness;
  let started: ReleaseHarness | undefined;
  beforeAll(async () => {
    started = await startReleaseHarness(options);
    Object.assign(harness, started);
  }, 120_000);
  afterAll(async () => {
    await started?.stop();
  });
  return harness;
}

/** Takes a release through the QA gate (passed) to the approval wait; returns the status there. */
export async function toApproval(h: ReleaseHarness, handle: WorkflowHandle): Promise<ReleaseStatus> {
  await waitForStatus(h, handle, inPhase('qa-gate'), 'the QA gate');
  await handle.signal(qaResultSignal, { passed: true, reporter: 'qa-bot' });
  return waitForStatus(h, handle, inPhase('awaiting-approval'), 'approval');
}
