/**
 * Named activity option sets of the release and rollback workflows, one per family of activity, so no call
 * site invents its own timeouts. Failure types of `src/errors.ts` decide retryability (the non-retryable
 * ones carry `nonRetryable`); these policies only shape the retries of the retryable ones.
 */
import type { ActivityOptions } from '@temporalio/workflow';

const minute = 60_000;
const hour = 60 * minute;

/** Short calls to an API (a deploy request, a tag, a traffic switch): retried with backoff for up to an hour. */
export const QUICK_CALL: ActivityOptions = {
  startToCloseTimeout: '1 minute',
  scheduleToCloseTimeout: hour,
  retry: { initialInterval: '1 second', backoffCoefficient: 2, maximumInterval: '1 minute' },
};

/** Reads that a decision waits on (metrics, logs, status): a few quick attempts, then the workflow decides. */
export const READ_CALL: ActivityOptions = {
  startToCloseTimeout: '30 seconds',
  retry: {
    initialInterval: '1 second',
    backoffCoefficient: 2,
    maximumInterval: '10 seconds',
    maximumAttempts: 3,
  },
};

/** Waiting for an external job (CI run, Coolify deployment, Proxmox task): heartbeats while it polls. */
export const EXTERNAL_JOB: ActivityOptions = {
  startToCloseTimeout: 2 * hour,
  heartbeatTimeout: '2 minutes',
  retry: { initialInterval: '5 seconds', backoffCoefficient: 2, maximumInterval: '2 minutes' },
};

/** Database dumps, restores and migrations: long, heartbeating, resumable. */
export const DATABASE_JOB: ActivityOptions = {
  startToCloseTimeout: 2 * hour,
  heartbeatTimeout: '2 minutes',
  retry: {
    initialInterval: '5 seconds',
    backoffCoefficient: 2,
    maximumInterval: '2 minutes',
    maximumAttempts: 10,
  },
};

/** Notifications (Telegram, Grafana): best effort, a failure is recorded and never stops a release. */
export const NOTIFICATION: ActivityOptions = {
  startToCloseTimeout: '30 seconds',
  retry: {
    initialInterval: '2 seconds',
    backoffCoefficient: 2,
    maximumInterval: '30 seconds',
    maximumAttempts: 5,
  },
};

/** The audit log (H4): retried for a long time, since a release must not move on unrecorded. */
export const AUDIT: ActivityOptions = {
  startToCloseTimeout: '30 seconds',
  scheduleToCloseTimeout: 6 * hour,
  retry: { initialInterval: '1 second', backoffCoefficient: 2, maximumInterval: '1 minute' },
};
