/**
 * The environment lock: one workflow per environment (`environment-lock-<environment>`) that lets one
 * release at a time hold the environment and queues later requests in arrival order.
 *
 * Requesters talk to it by signals only, and it answers them by signalling back, so neither side ever
 * blocks on the other: a release that is terminated (and so runs no cleanup) cannot deadlock the queue,
 * because the lock checks its holder periodically and takes the lock back from a closed one. The lock
 * completes when it is idle; the next request starts it again through signal-with-start.
 *
 * Deterministic zone: the signal, query and payload shapes below are workflow code. Add optional fields,
 * never rename or remove one, or running locks fail to replay.
 */
import {
  type ActivityOptions,
  allHandlersFinished,
  condition,
  continueAsNew,
  defineQuery,
  defineSignal,
  getExternalWorkflowHandle,
  isCancellation,
  log,
  proxyActivities,
  setHandler,
  workflowInfo,
} from '@temporalio/workflow';
import { z } from 'zod';
import type { TemporalActivities } from '../activities/temporal/temporal-activities';
import { FailureType, failure } from '../errors';

/** Workflow type of the lock (`temporal workflow describe --workflow-id environment-lock-production`). */
export const ENVIRONMENT_LOCK_WORKFLOW_TYPE = 'environmentLockWorkflow';

/** The workflow id of the lock of `environment`: `environment-lock-production`. One lock per environment. */
export const environmentLockWorkflowId = (environment: string): string => `environment-lock-${environment}`;

/** How often a held lock checks that its holder still runs, unless the input says otherwise: 10 minutes. */
export const DEFAULT_HOLDER_CHECK_INTERVAL_MS = 10 * 60_000;
/** History length after which the lock continues as new, unless the input says otherwise. */
export const DEFAULT_CONTINUE_AS_NEW_AFTER_EVENTS = 2_000;

/** An environment name as the platform configuration spells it: `production`. */
export const LockEnvironment = z
  .string()
  .regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/, 'must be an environment name such as production');

const WorkflowId = z.string().min(1).max(1_000);

/**
 * `acquireEnvironmentLock` and `releaseEnvironmentLock` signal payload:
 * `{"requesterWorkflowId":"release-v1.2.0","requestId":"release-v1.2.0/<runId>/production/1"}`.
 * `requesterRunId`, when given, pins the request to that run: the lock answers and checks that run only.
 */
export const EnvironmentLockRequest = z.strictObject({
  requesterWorkflowId: WorkflowId,
  requesterRunId: z.string().min(1).max(200).optional(),
  requestId: z.string().min(1).max(1_000),
});
export type EnvironmentLockRequest = z.infer<typeof EnvironmentLockRequest>;

/** `environmentLockGranted` signal payload, sent to the requester: the lock is now theirs. */
export const EnvironmentLockGranted = z.strictObject({
  environment: LockEnvironment,
  requestId: z.string().min(1),
});
export type EnvironmentLockGranted = z.infer<typeof EnvironmentLockGranted>;

/** `environmentLockQueued` signal payload, sent to a waiter whenever its place changes; 1 is next. */
export const EnvironmentLockQueued = z.strictObject({
  environment: LockEnvironment,
  requestId: z.string().min(1),
  position: z.number().int().min(1),
});
export type EnvironmentLockQueued = z.infer<typeof EnvironmentLockQueued>;

const LockHolder = EnvironmentLockRequest.extend({
  /** Workflow time at which the lock was granted. */
  acquiredAtMs: z.number(),
});
type LockHolder = z.infer<typeof LockHolder>;

const LockWaiter = EnvironmentLockRequest.extend({
  requestedAtMs: z.number(),
  /** The position last told to the requester; a different current position is told again. */
  notifiedPosition: z.number().int().optional(),
});
type LockWaiter = z.infer<typeof LockWaiter>;

/**
 * Input of `environmentLockWorkflow`: `{"environment":"production"}`. `holder` and `queue` are the state a
 * run carries into the next one when it continues as new; callers leave them out.
 */
export const EnvironmentLockInput = z.strictObject({
  environment: LockEnvironment,
  holderCheckIntervalMs: z.number().int().min(1_000).default(DEFAULT_HOLDER_CHECK_INTERVAL_MS),
  continueAsNewAfterEvents: z.number().int().min(20).default(DEFAULT_CONTINUE_AS_NEW_AFTER_EVENTS),
  holder: LockHolder.nullable().default(null),
  queue: z.array(LockWaiter).default([]),
});
export type EnvironmentLockInput = z.input<typeof EnvironmentLockInput>;

/** Answer of the `environmentLockState` query. */
export interface EnvironmentLockState {
  environment: string;
  holder: { requesterWorkflowId: string; requestId: string; acquiredAtMs: number } | null;
  /** Waiters in the order they will get the lock; `position` 1 is next. */
  queue: { requesterWorkflowId: string; requestId: string; requestedAtMs: number; position: number }[];
}

/** Result of a lock run that completed because nobody held or wanted the lock any more. */
export interface EnvironmentLockResult {
  environment: string;
}

/** Signals carry raw JSON: the lock validates every payload itself and logs and ignores what is malformed. */
export const acquireEnvironmentLockSignal = defineSignal<[unknown]>('acquireEnvironmentLock');
export const releaseEnvironmentLockSignal = defineSignal<[unknown]>('releaseEnvironmentLock');
/** Sent by the lock to the requester (see `acquireEnvironmentLock` in ./environment-lock). */
export const environmentLockGrantedSignal = defineSignal<[unknown]>('environmentLockGranted');
export const environmentLockQueuedSignal = defineSignal<[unknown]>('environmentLockQueued');
/** Who holds the environment and who waits, in order. */
export const environmentLockStateQuery = defineQuery<EnvironmentLockState>('environmentLockState');

/**
 * The holder check: a describe call. A failed check keeps the holder until the next interval, so a few
 * attempts are enough and the lock never stalls on an unreachable frontend.
 */
export const holderCheckActivityOptions: ActivityOptions = {
  startToCloseTimeout: '10 seconds',
  retry: {
    initialInterval: '1 second',
    backoffCoefficient: 2,
    maximumInterval: '20 seconds',
    maximumAttempts: 5,
  },
};

const { isWorkflowOpen } = proxyActivities<TemporalActivities>(holderCheckActivityOptions);

function parseSignal<S extends z.ZodType>(schema: S, raw: unknown, signal: string): z.output<S> | undefined {
  const parsed = schema.safeParse(raw);
  if (parsed.success) return parsed.data;
  log.warn(`environment lock: ignored an invalid ${signal} signal`, {
    issues: parsed.error.issues.map((i) => `${i.path.join('.') || '(payload)'}: ${i.message}`),
  });
  return undefined;
}

/**
 * Holds the lock of one environment for one requester at a time (workflow id
 * `environmentLockWorkflowId(environment)`, task queue `aceh-release`).
 *
 * Guarantees: at most one holder; waiters are granted in the order their first request arrived; a repeated
 * `acquireEnvironmentLock` with a request id already held or queued changes nothing; `releaseEnvironmentLock`
 * releases the hold or withdraws the queued request with that id (an unknown id is ignored). A requester that
 * cannot be signalled (closed or gone) is dropped; a holder found closed by the periodic check loses the
 * lock. Continues as new with its holder and queue when the history grows long; completes when idle.
 * Fails only on malformed input (non-retryable `InvalidInput`).
 */
export async function environmentLockWorkflow(input: EnvironmentLockInput): Promise<EnvironmentLockResult> {
  const parsed = EnvironmentLockInput.safeParse(input);
  if (!parsed.success) {
    const issues = parsed.error.issues.map((i) => `${i.path.join('.') || '(input)'}: ${i.message}`);
    throw failure(FailureType.InvalidInput, `environment lock: invalid input: ${issues.join('; ')}`, {
      details: { issues },
    });
  }
  const { environment, holderCheckIntervalMs, continueAsNewAfterEvents } = parsed.data;
  let holder: LockHolder | null = parsed.data.holder;
  const queue: LockWaiter[] = parsed.data.queue;
  let nextHolderCheckAtMs = Date.now() + holderCheckIntervalMs;
  /** Set by every handler that changes the state; the main loop waits on it. */
  let changed = false;

  const isKnown = (requestId: string) =>
    holder?.requestId === requestId || queue.some((w) => w.requestId === requestId);

  setHandler(acquireEnvironmentLockSignal, (raw) => {
    const request = parseSignal(EnvironmentLockRequest, raw, 'acquireEnvironmentLock');
    if (!request) return;
    if (isKnown(request.requestId)) {
      log.info('environment lock: repeated request ignored', { environment, requestId: request.requestId });
      return;
    }
    queue.push({ ...request, requestedAtMs: Date.now() });
    changed = true;
  });

  setHandler(releaseEnvironmentLockSignal, (raw) => {
    const request = parseSignal(EnvironmentLockRequest, raw, 'releaseEnvironmentLock');
    if (!request) return;
    const { requestId, requesterWorkflowId } = request;
    if (holder?.requestId === requestId && holder.requesterWorkflowId === requesterWorkflowId) {
      log.info('environment lock: released', {
        environment,
        requestId,
        heldMs: Date.now() - holder.acquiredAtMs,
      });
      holder = null;
      changed = true;
      return;
    }
    const index = queue.findIndex(
      (w) => w.requestId === requestId && w.requesterWorkflowId === requesterWorkflowId,
    );
    if (index < 0) {
      log.info('environment lock: release of an unknown request ignored', { environment, requestId });
      return;
    }
    queue.splice(index, 1);
    log.info('environment lock: queued request withdrawn', { environment, requestId });
    changed = true;
  });

  setHandler(environmentLockStateQuery, () => ({
    environment,
    holder: holder && {
      requesterWorkflowId: holder.requesterWorkflowId,
      requestId: holder.requestId,
      acquiredAtMs: holder.acquiredAtMs,
    },
    queue: queue.map((w, i) => ({
      requesterWorkflowId: w.requesterWorkflowId,
      requestId: w.requestId,
      requestedAtMs: w.requestedAtMs,
      position: i + 1,
    })),
  }));

  /** Signals a requester; false when it no longer exists or has closed. */
  async function tell(
    to: EnvironmentLockRequest,
    signal: typeof environmentLockGrantedSignal,
    payload: object,
  ) {
    try {
      await getExternalWorkflowHandle(to.requesterWorkflowId, to.requesterRunId).signal(signal, payload);
      return true;
    } catch (err) {
      if (isCancellation(err)) throw err;
      log.warn('environment lock: requester is gone; its request is dropped', {
        environment,
        requesterWorkflowId: to.requesterWorkflowId,
        requestId: to.requestId,
        error: err instanceof Error ? err.message : String(err),
      });
      return false;
    }
  }

  /** Grants the lock when free and tells waiters their new positions, until nothing is left to tell. */
  async function settle(): Promise<void> {
    for (;;) {
      changed = false;
      if (!holder) {
        const next = queue.shift();
        if (next) {
          const { notifiedPosition: _told, requestedAtMs: _at, ...request } = next;
          holder = { ...request, acquiredAtMs: Date.now() };
          nextHolderCheckAtMs = Date.now() + holderCheckIntervalMs;
          log.info('environment lock: granted', { environment, requestId: next.requestId });
          const delivered = await tell(next, environmentLockGrantedSignal, {
            environment,
            requestId: next.requestId,
          } satisfies EnvironmentLockGranted);
          if (!delivered && holder?.requestId === next.requestId) holder = null;
          continue;
        }
      }
      const stale = queue.flatMap((waiter, i) =>
        waiter.notifiedPosition === i + 1 ? [] : [{ waiter, position: i + 1 }],
      );
      if (stale.length === 0) return;
      for (const { waiter, position } of stale) waiter.notifiedPosition = position;
      const delivered = await Promise.all(
        stale.map(({ waiter, position }) =>
          tell(waiter, environmentLockQueuedSignal, {
            environment,
            requestId: waiter.requestId,
            position,
          } satisfies EnvironmentLockQueued),
        ),
      );
      stale.forEach(({ waiter }, i) => {
        if (delivered[i]) return;
        const index = queue.indexOf(waiter);
        if (index >= 0) queue.splice(index, 1);
      });
    }
  }

  /** Takes the lock back from a holder that closed without releasing it (terminated, timed out, failed). */
  async function checkHolder(checked: LockHolder): Promise<void> {
    let answer: { open: boolean; status: string };
    try {
      answer = await isWorkflowOpen({
        workflowId: checked.requesterWorkflowId,
        runId: checked.requesterRunId,
      });
    } catch (err) {
      if (isCancellation(err)) throw err;
      log.warn('environment lock: could not check the holder; it keeps the lock until the next check', {
        environment,
        requestId: checked.requestId,
        error: err instanceof Error ? err.message : String(err),
      });
      return;
    }
    if (answer.open || holder?.requestId !== checked.requestId) return;
    log.warn('environment lock: the holder closed without releasing the lock; the lock is taken back', {
      environment,
      requesterWorkflowId: checked.requesterWorkflowId,
      requestId: checked.requestId,
      holderStatus: answer.status,
    });
    holder = null;
  }

  const continueAsNewDue = () => {
    const info = workflowInfo();
    return info.continueAsNewSuggested || info.historyLength >= continueAsNewAfterEvents;
  };

  for (;;) {
    await settle();
    if (!holder && queue.length === 0) {
      await condition(allHandlersFinished);
      if (!holder && queue.length === 0) {
        log.info('environment lock: idle; completing', { environment });
        return { environment };
      }
      continue;
    }
    if (continueAsNewDue()) {
      await condition(allHandlersFinished);
      log.info('environment lock: continuing as new', {
        environment,
        historyLength: workflowInfo().historyLength,
      });
      return await continueAsNew<typeof environmentLockWorkflow>({
        environment,
        holderCheckIntervalMs,
        continueAsNewAfterEvents,
        holder,
        queue,
      });
    }
    if (holder) {
      const untilCheck = nextHolderCheckAtMs - Date.now();
      if (untilCheck <= 0) {
        await checkHolder(holder);
        nextHolderCheckAtMs = Date.now() + holderCheckIntervalMs;
        continue;
      }
      await condition(() => changed, untilCheck);
    } else {
      await condition(() => changed);
    }
  }
}
