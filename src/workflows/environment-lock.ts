/**
 * The requester side of the environment lock, for use inside a workflow (a release holds `production`
 * from its start to its end). The lock itself is `environmentLockWorkflow`.
 *
 * Deterministic zone.
 */
import {
  ActivityCancellationType,
  type ActivityOptions,
  CancellationScope,
  condition,
  getExternalWorkflowHandle,
  log,
  proxyActivities,
  setHandler,
  workflowInfo,
} from '@temporalio/workflow';
import type { TemporalActivities } from '../activities/temporal/temporal-activities';
import {
  EnvironmentLockGranted,
  EnvironmentLockQueued,
  environmentLockGrantedSignal,
  environmentLockQueuedSignal,
  environmentLockWorkflowId,
  releaseEnvironmentLockSignal,
} from './environment-lock-workflow';

/**
 * The request: a signal-with-start of the lock workflow. Short attempts, retried forever with backoff (an
 * unreachable frontend only delays the release). A cancelled wait lets a running attempt finish, so the
 * withdrawal that follows always reaches the lock after the request.
 */
export const environmentLockRequestOptions: ActivityOptions = {
  startToCloseTimeout: '10 seconds',
  retry: { initialInterval: '1 second', backoffCoefficient: 2, maximumInterval: '1 minute' },
  cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
};

const { requestEnvironmentLock } = proxyActivities<TemporalActivities>(environmentLockRequestOptions);

/** A granted lock. */
export interface EnvironmentLockHandle {
  environment: string;
  requestId: string;
  /**
   * Gives the lock back. Idempotent (every call returns the same promise), never throws, and signals from a
   * non-cancellable scope of its own, so it is safe in compensation and `nonCancellable` cleanup.
   */
  release(): Promise<void>;
}

interface PendingRequest {
  environment: string;
  granted: boolean;
  onQueued: (position: number) => void;
}

/** Module state is per workflow run: the SDK isolates workflow modules between executions. */
const pending = new Map<string, PendingRequest>();
/** Requests this run has released or withdrawn, by request id, with their environment. */
const finished = new Map<string, string>();
const sequences = new Map<string, number>();
let handlersRegistered = false;

function signalRelease(environment: string, requestId: string): Promise<void> {
  const { workflowId, runId } = workflowInfo();
  return CancellationScope.nonCancellable(async () => {
    try {
      await getExternalWorkflowHandle(environmentLockWorkflowId(environment)).signal(
        releaseEnvironmentLockSignal,
        {
          requesterWorkflowId: workflowId,
          requesterRunId: runId,
          requestId,
        },
      );
    } catch (err) {
      // The lock only completes when nobody holds or wants it: there is nothing left to release.
      log.info('environment lock: the lock workflow is not running; nothing to release', {
        environment,
        requestId,
        error: err instanceof Error ? err.message : String(err),
      });
    }
  });
}

function registerHandlers(): void {
  if (handlersRegistered) return;
  handlersRegistered = true;
  setHandler(environmentLockGrantedSignal, (raw) => {
    const parsed = EnvironmentLockGranted.safeParse(raw);
    if (!parsed.success) {
      log.warn('environment lock: ignored an invalid environmentLockGranted signal', {
        issues: parsed.error.issues,
      });
      return;
    }
    const { requestId } = parsed.data;
    const request = pending.get(requestId);
    if (request) {
      request.granted = true;
      return;
    }
    const environment = finished.get(requestId);
    // A grant of a request already given up (a late delivery of a withdrawn request): hand it straight back.
    if (environment !== undefined) void signalRelease(environment, requestId);
    else log.warn('environment lock: ignored a grant of an unknown request', { requestId });
  });
  setHandler(environmentLockQueuedSignal, (raw) => {
    const parsed = EnvironmentLockQueued.safeParse(raw);
    if (!parsed.success) {
      log.warn('environment lock: ignored an invalid environmentLockQueued signal', {
        issues: parsed.error.issues,
      });
      return;
    }
    const request = pending.get(parsed.data.requestId);
    if (request && !request.granted) request.onQueued(parsed.data.position);
  });
}

/**
 * Asks for the lock of `environment` and waits, for days if need be, until it is granted; `onQueued(position)`
 * is called on each position update while waiting (1 = next; it must not throw). Requests are served in
 * arrival order. The request id is derived from this run (`<workflowId>/<runId>/<environment>/<n>`), so a
 * retried request is never queued twice.
 *
 * Cancellable: a cancelled wait withdraws the request (or gives back a lock granted meanwhile) and rethrows
 * the cancellation. The request activity retries until the frontend answers; it fails only on a
 * non-retryable failure of the request, which is rethrown after the withdrawal.
 */
export async function acquireEnvironmentLock(
  environment: string,
  onQueued: (position: number) => void,
): Promise<EnvironmentLockHandle> {
  registerHandlers();
  const { workflowId, runId } = workflowInfo();
  const sequence = (sequences.get(environment) ?? 0) + 1;
  sequences.set(environment, sequence);
  const requestId = `${workflowId}/${runId}/${environment}/${sequence}`;
  const request: PendingRequest = { environment, granted: false, onQueued };
  pending.set(requestId, request);

  let releasing: Promise<void> | undefined;
  const release = (): Promise<void> => {
    if (!releasing) {
      pending.delete(requestId);
      finished.set(requestId, environment);
      releasing = signalRelease(environment, requestId);
    }
    return releasing;
  };

  try {
    await requestEnvironmentLock({
      environment,
      requesterWorkflowId: workflowId,
      requesterRunId: runId,
      requestId,
    });
    await condition(() => request.granted);
  } catch (err) {
    await release();
    throw err;
  }
  return { environment, requestId, release };
}
