/**
 * Activities that talk to the Temporal cluster itself, for what workflow code cannot do: signal-with-start
 * (the environment lock request) and describing another workflow (is the lock holder still running?).
 */
import { type Client, ServiceError, isGrpcServiceError } from '@temporalio/client';
import { NamespaceNotFoundError, WorkflowNotFoundError } from '@temporalio/common';
import { z } from 'zod';
import { FailureType, failure } from '../../errors';
import {
  ENVIRONMENT_LOCK_WORKFLOW_TYPE,
  EnvironmentLockRequest,
  LockEnvironment,
  acquireEnvironmentLockSignal,
  environmentLockWorkflowId,
  type EnvironmentLockInput,
} from '../../workflows/environment-lock-workflow';
import { parseActivityInput } from '../activity-support';

/** Input of `requestEnvironmentLock`: the lock request plus the environment whose lock is wanted. */
export const RequestEnvironmentLockInput = EnvironmentLockRequest.extend({ environment: LockEnvironment });
export type RequestEnvironmentLockInput = z.infer<typeof RequestEnvironmentLockInput>;

/** Result of `requestEnvironmentLock`: the lock run that received the request. */
export interface RequestEnvironmentLockResult {
  lockWorkflowId: string;
  lockRunId: string;
}

/** Input of `isWorkflowOpen`; with `runId` that run is described, otherwise the latest run of the id. */
export const IsWorkflowOpenInput = z.strictObject({
  workflowId: z.string().min(1).max(1_000),
  runId: z.string().min(1).max(200).optional(),
});
export type IsWorkflowOpenInput = z.infer<typeof IsWorkflowOpenInput>;

/** Result of `isWorkflowOpen`: `status` is the Temporal status name, or `NOT_FOUND`. */
export interface IsWorkflowOpenResult {
  open: boolean;
  status: string;
}

/** Statuses of a run that will never do anything again. Anything else (running, paused, unknown) is open. */
const CLOSED_STATUSES = new Set([
  'COMPLETED',
  'FAILED',
  'CANCELLED',
  'TERMINATED',
  'CONTINUED_AS_NEW',
  'TIMED_OUT',
]);

/** The gRPC status codes that mean something other than "the frontend is unavailable right now". */
const Grpc = {
  INVALID_ARGUMENT: 3,
  NOT_FOUND: 5,
  ALREADY_EXISTS: 6,
  PERMISSION_DENIED: 7,
  RESOURCE_EXHAUSTED: 8,
  FAILED_PRECONDITION: 9,
  UNIMPLEMENTED: 12,
  UNAUTHENTICATED: 16,
} as const;

/** gRPC code -> failure type; codes not listed are treated as the frontend being unavailable (retryable). */
const FAILURE_BY_GRPC_CODE: Record<number, FailureType> = {
  [Grpc.INVALID_ARGUMENT]: FailureType.UpstreamRejected,
  [Grpc.ALREADY_EXISTS]: FailureType.UpstreamRejected,
  [Grpc.FAILED_PRECONDITION]: FailureType.UpstreamRejected,
  [Grpc.UNIMPLEMENTED]: FailureType.UpstreamRejected,
  [Grpc.NOT_FOUND]: FailureType.NotFound,
  [Grpc.PERMISSION_DENIED]: FailureType.Unauthorized,
  [Grpc.UNAUTHENTICATED]: FailureType.Unauthorized,
  [Grpc.RESOURCE_EXHAUSTED]: FailureType.RateLimited,
};

/** The gRPC status code behind a client error, looking through the client's `ServiceError` wrapper. */
function grpcCode(err: unknown): number | undefined {
  if (isGrpcServiceError(err)) return err.code;
  if (err instanceof ServiceError && err.cause) return grpcCode(err.cause);
  return undefined;
}

/** Classifies a failure of a Temporal client call into the closed list of failure types. */
function classifyTemporalFailure(err: unknown, activity: string, workflowId: string) {
  const code = grpcCode(err);
  const type =
    err instanceof NamespaceNotFoundError
      ? FailureType.NotFound
      : (code !== undefined && FAILURE_BY_GRPC_CODE[code]) || FailureType.UpstreamUnavailable;
  const reason = err instanceof Error ? err.message : String(err);
  const next =
    type === FailureType.UpstreamUnavailable || type === FailureType.RateLimited
      ? 'it is retried; check that the Temporal frontend is reachable from the worker'
      : type === FailureType.Unauthorized
        ? 'check the worker credentials for the namespace'
        : 'check the namespace and workflow id';
  return failure(type, `${activity}: Temporal refused the call for ${workflowId} (${reason}); ${next}`, {
    details: { activity, workflowId, grpcCode: code ?? null },
    cause: err instanceof Error ? err : undefined,
  });
}

export interface TemporalActivitiesOptions {
  /** A client of the namespace the worker runs in. */
  client: Client;
  /** The task queue the environment lock workflows run on (`aceh-release`). */
  taskQueue: string;
  /** Options given to a lock workflow when a request starts it; the lock's defaults otherwise. */
  environmentLock?: Pick<EnvironmentLockInput, 'holderCheckIntervalMs' | 'continueAsNewAfterEvents'>;
}

/**
 * Builds the Temporal activities over `client`.
 *
 * - `requestEnvironmentLock` signals-with-start `environmentLockWorkflowId(environment)`: the lock is started
 *   when not running. Idempotent: the lock ignores a request id it already holds or queues, so retries are
 *   safe.
 * - `isWorkflowOpen` describes a run; a workflow that does not exist counts as closed. Read-only.
 *
 * Failures: malformed input is `InvalidInput`; refused calls follow the gRPC code (`UpstreamRejected`,
 * `NotFound`, `Unauthorized`, `RateLimited`); connection trouble and server errors are the retryable
 * `UpstreamUnavailable`.
 */
export function createTemporalActivities(options: TemporalActivitiesOptions) {
  const { client, taskQueue } = options;
  const lockOptions = options.environmentLock ?? {};

  return {
    async requestEnvironmentLock(input: RequestEnvironmentLockInput): Promise<RequestEnvironmentLockResult> {
      const { environment, ...request } = parseActivityInput(
        RequestEnvironmentLockInput,
        input,
        'requestEnvironmentLock',
      );
      const workflowId = environmentLockWorkflowId(environment);
      const lockInput: EnvironmentLockInput = { environment, ...lockOptions };
      try {
        const handle = await client.workflow.signalWithStart(ENVIRONMENT_LOCK_WORKFLOW_TYPE, {
          workflowId,
          taskQueue,
          args: [lockInput],
          signal: acquireEnvironmentLockSignal,
          signalArgs: [request],
        });
        return { lockWorkflowId: workflowId, lockRunId: handle.signaledRunId };
      } catch (err) {
        throw classifyTemporalFailure(err, 'requestEnvironmentLock', workflowId);
      }
    },

    async isWorkflowOpen(input: IsWorkflowOpenInput): Promise<IsWorkflowOpenResult> {
      const { workflowId, runId } = parseActivityInput(IsWorkflowOpenInput, input, 'isWorkflowOpen');
      try {
        const description = await client.workflow.getHandle(workflowId, runId).describe();
        const status = description.status.name;
        return { open: !CLOSED_STATUSES.has(status), status };
      } catch (err) {
        if (err instanceof WorkflowNotFoundError) {
          return { open: false, status: 'NOT_FOUND' };
        }
        throw classifyTemporalFailure(err, 'isWorkflowOpen', workflowId);
      }
    },
  };
}

/** The activities of `createTemporalActivities`, for `proxyActivities<TemporalActivities>()`. */
export type TemporalActivities = ReturnType<typeof createTemporalActivities>;
