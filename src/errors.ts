/**
 * The closed list of failure types that cross the Temporal boundary. Activities throw
 * `ApplicationFailure`s of these types only; workflows branch on `failure.type`, never on `instanceof`.
 * Deterministic zone: imported by workflows.
 */
import { ApplicationFailure } from '@temporalio/common';

export const FailureType = {
  /** The input (workflow input, signal payload, activity input, configuration) is malformed. Not retryable. */
  InvalidInput: 'InvalidInput',
  /** Credentials are missing, wrong or lack a permission (401/403). Not retryable: fix the credential. */
  Unauthorized: 'Unauthorized',
  /** The thing asked for does not exist (404/410). Not retryable. */
  NotFound: 'NotFound',
  /** The upstream refused the request as it stands (other 4xx, 409 conflicts). Not retryable. */
  UpstreamRejected: 'UpstreamRejected',
  /** The upstream is down, slow or failing (408, 5xx, network errors). Retryable. */
  UpstreamUnavailable: 'UpstreamUnavailable',
  /** The upstream asked us to slow down (429); `nextRetryDelay` honours its Retry-After. Retryable. */
  RateLimited: 'RateLimited',
  /** A 2xx response whose body does not match the published contract. Not retryable: a human must look. */
  ContractViolation: 'ContractViolation',
  /** A rule of ours forbids the action (freeze window, separation of duties, stale snapshot). Not retryable. */
  PolicyViolation: 'PolicyViolation',
  /** An external job (deployment, task, CI run) ended in failure. Not retryable as such. */
  OperationFailed: 'OperationFailed',
} as const;
export type FailureType = (typeof FailureType)[keyof typeof FailureType];

export const NON_RETRYABLE_FAILURE_TYPES: readonly FailureType[] = [
  FailureType.InvalidInput,
  FailureType.Unauthorized,
  FailureType.NotFound,
  FailureType.UpstreamRejected,
  FailureType.ContractViolation,
  FailureType.PolicyViolation,
  FailureType.OperationFailed,
];

export interface FailureOptions {
  /** Safe, secret-free details for the operator (they are written into workflow history). */
  details?: Record<string, unknown>;
  /** Overrides the retry policy's backoff for this failure (Retry-After). */
  nextRetryDelayMs?: number;
  cause?: Error;
}

/** Builds an `ApplicationFailure` of a listed type; retryability follows from the type. */
export function failure(
  type: FailureType,
  message: string,
  options: FailureOptions = {},
): ApplicationFailure {
  return ApplicationFailure.create({
    type,
    message,
    nonRetryable: NON_RETRYABLE_FAILURE_TYPES.includes(type),
    details: options.details ? [options.details] : undefined,
    nextRetryDelay: options.nextRetryDelayMs,
    cause: options.cause,
  });
}
