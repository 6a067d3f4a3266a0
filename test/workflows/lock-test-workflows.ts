/**
 * Workflows of the environment lock tests: the lock itself and a minimal requester that acquires the lock,
 * records the positions it is told, holds until `proceed`, and releases (also when cancelled while holding).
 * With `linger` it stays open after the release until a second `proceed`.
 */
import { CancellationScope, condition, defineQuery, defineSignal, setHandler } from '@temporalio/workflow';
import { acquireEnvironmentLock } from '../../src/workflows/environment-lock';

export { environmentLockWorkflow } from '../../src/workflows/environment-lock-workflow';

export const proceedSignal = defineSignal('proceed');

export interface LockRequesterState {
  phase: 'waiting' | 'holding' | 'released';
  positions: number[];
  requestId?: string;
}
export const lockRequesterStateQuery = defineQuery<LockRequesterState>('lockRequesterState');

export interface LockRequesterResult {
  positions: number[];
  requestId: string;
  acquiredAtMs: number;
  releasedAtMs: number;
}

export async function lockRequesterWorkflow(input: {
  environment: string;
  linger?: boolean;
}): Promise<LockRequesterResult> {
  const state: LockRequesterState = { phase: 'waiting', positions: [] };
  let proceeds = 0;
  setHandler(proceedSignal, () => {
    proceeds += 1;
  });
  setHandler(lockRequesterStateQuery, () => state);

  const lock = await acquireEnvironmentLock(input.environment, (position) => state.positions.push(position));
  const acquiredAtMs = Date.now();
  state.phase = 'holding';
  state.requestId = lock.requestId;
  try {
    await condition(() => proceeds >= 1);
  } finally {
    await CancellationScope.nonCancellable(async () => {
      await lock.release();
      await lock.release();
    });
    state.phase = 'released';
  }
  const releasedAtMs = Date.now();
  if (input.linger) await condition(() => proceeds >= 2);
  return { positions: state.positions, requestId: lock.requestId, acquiredAtMs, releasedAtMs };
}
