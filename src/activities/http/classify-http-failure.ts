/**
 * The one table that turns an external system's HTTP answer (or a network error) into a failure of the
 * closed list in src/errors.ts:
 *
 * | answer                         | type                | retry                                   |
 * | ------------------------------ | ------------------- | --------------------------------------- |
 * | 401, 403                       | Unauthorized        | no                                      |
 * | 404, 410                       | NotFound            | no                                      |
 * | 408                            | UpstreamUnavailable | yes                                     |
 * | 429                            | RateLimited         | yes, after Retry-After when given       |
 * | other 4xx                      | UpstreamRejected    | no                                      |
 * | 5xx                            | UpstreamUnavailable | yes, after Retry-After when given       |
 * | network error, timeout         | UpstreamUnavailable | yes                                     |
 * | 2xx body not matching contract | ContractViolation   | no                                      |
 */
import type { ApplicationFailure } from '@temporalio/common';
import { FailureType, failure } from '../../errors';

export interface HttpFailureContext {
  /** The system, as the operator knows it: `Coolify`, `Prometheus`, ... */
  system: string;
  /** What we were doing: `POST /api/v1/deploy`. Never contains credentials or query secrets. */
  operation: string;
}

/** Retry-After as milliseconds from now: delta-seconds or an HTTP date. Undefined when absent or invalid. */
export function parseRetryAfter(
  value: string | null | undefined,
  nowMs: number = Date.now(),
): number | undefined {
  if (!value) return undefined;
  const trimmed = value.trim();
  if (/^\d+$/.test(trimmed)) return Number(trimmed) * 1000;
  const date = Date.parse(trimmed);
  if (Number.isNaN(date)) return undefined;
  return Math.max(0, date - nowMs);
}

export function classifyHttpStatus(
  status: number,
  ctx: HttpFailureContext,
  options: { retryAfterMs?: number; upstreamMessage?: string } = {},
): ApplicationFailure {
  const where = `${ctx.system} ${ctx.operation}`;
  const said = options.upstreamMessage ? `: ${options.upstreamMessage}` : '';
  const details = { system: ctx.system, operation: ctx.operation, status };
  if (status === 401 || status === 403) {
    return failure(
      FailureType.Unauthorized,
      `${where} answered ${status}${said}; check the credential and its permissions`,
      { details },
    );
  }
  if (status === 404 || status === 410) {
    return failure(FailureType.NotFound, `${where} answered ${status}${said}`, { details });
  }
  if (status === 429) {
    return failure(FailureType.RateLimited, `${where} is rate limiting us (429)${said}`, {
      details,
      nextRetryDelayMs: options.retryAfterMs,
    });
  }
  if (status === 408 || status >= 500) {
    return failure(FailureType.UpstreamUnavailable, `${where} answered ${status}${said}; will retry`, {
      details,
      nextRetryDelayMs: options.retryAfterMs,
    });
  }
  return failure(FailureType.UpstreamRejected, `${where} refused the request (${status})${said}`, {
    details,
  });
}

/** A fetch that never reached an answer: refused connection, DNS, TLS, timeout, reset. */
export function classifyNetworkError(err: unknown, ctx: HttpFailureContext): ApplicationFailure {
  const cause = err instanceof Error ? err : new Error(String(err));
  const code = (cause as { cause?: { code?: string } }).cause?.code ?? (cause as { code?: string }).code;
  const reason =
    cause.name === 'TimeoutError' || cause.name === 'AbortError' ? 'timed out' : (code ?? cause.message);
  return failure(
    FailureType.UpstreamUnavailable,
    `${ctx.system} ${ctx.operation} could not be reached (${reason}); will retry`,
    {
      details: { system: ctx.system, operation: ctx.operation, reason },
    },
  );
}
