/**
 * The one table that turns an S3 error (AWS SDK v3 service exception, or a request that never got an
 * answer) into a failure of the closed list in src/errors.ts. The error code wins over the status, since
 * S3-compatible servers send the code in the XML body and some codes share a status (SlowDown and
 * ServiceUnavailable are both 503):
 *
 * | S3 error code / answer                                             | type                | retry |
 * | ------------------------------------------------------------------ | ------------------- | ----- |
 * | AccessDenied, InvalidAccessKeyId, SignatureDoesNotMatch, ExpiredToken, InvalidToken, 401, 403 | Unauthorized | no |
 * | NoSuchBucket, NoSuchKey, NoSuchUpload, NotFound, 404               | NotFound            | no    |
 * | SlowDown, TooManyRequests, Throttling, RequestLimitExceeded, 429   | RateLimited         | yes   |
 * | ServiceUnavailable, InternalError, RequestTimeout, 408, other 5xx  | UpstreamUnavailable | yes   |
 * | NotImplemented, MethodNotAllowed (the server lacks the feature)    | UpstreamRejected    | no    |
 * | other 4xx (InvalidBucketName, EntityTooSmall, ...)                 | UpstreamRejected    | no    |
 * | no answer: refused, reset, DNS, timeout                            | UpstreamUnavailable | yes   |
 * | a 2xx answer the SDK cannot parse                                  | ContractViolation   | no    |
 *
 * Messages pass through the redactor built over the secret access key, so a server that echoes request
 * material cannot leak it; the SDK error itself is never attached as a cause (it carries the raw response).
 */
import type { ApplicationFailure } from '@temporalio/common';
import { FailureType, failure } from '../../errors';
import { parseRetryAfter } from '../http/classify-http-failure';

export interface S3FailureContext {
  /** What we were doing, as the operator knows it: `PutObject`, `CopyObject`, ... */
  operation: string;
  bucket: string;
  key?: string;
  /** Applied to every message; built over the secret access key. */
  redact: (text: string) => string;
}

const UNAUTHORIZED_CODES = new Set([
  'AccessDenied',
  'InvalidAccessKeyId',
  'SignatureDoesNotMatch',
  'ExpiredToken',
  'InvalidToken',
  'TokenRefreshRequired',
  'AllAccessDisabled',
  'AccountProblem',
  'Forbidden',
]);
const NOT_FOUND_CODES = new Set(['NoSuchBucket', 'NoSuchKey', 'NoSuchUpload', 'NoSuchVersion', 'NotFound']);
const RATE_LIMIT_CODES = new Set([
  'SlowDown',
  'TooManyRequests',
  'TooManyRequestsException',
  'Throttling',
  'ThrottlingException',
  'RequestLimitExceeded',
]);
const UNAVAILABLE_CODES = new Set([
  'ServiceUnavailable',
  'InternalError',
  'RequestTimeout',
  'RequestTimeoutException',
  'TimeoutError',
]);
const UNSUPPORTED_CODES = new Set(['NotImplemented', 'MethodNotAllowed']);

interface SdkErrorShape {
  name?: string;
  message?: string;
  Code?: string;
  code?: string;
  $metadata?: { httpStatusCode?: number };
  $response?: { statusCode?: number; headers?: Record<string, string | undefined> };
}

function describeTarget(ctx: S3FailureContext): string {
  return ctx.key === undefined ? `s3://${ctx.bucket}` : `s3://${ctx.bucket}/${ctx.key}`;
}

/** The S3 error code of an SDK error (`Code` from the XML body, else the exception name). */
export function s3ErrorCode(err: unknown): string | undefined {
  if (typeof err !== 'object' || err === null) return undefined;
  const e = err as SdkErrorShape;
  return e.Code ?? e.name;
}

/** The HTTP status of an SDK error; undefined when no answer was received. */
export function s3ErrorStatus(err: unknown): number | undefined {
  if (typeof err !== 'object' || err === null) return undefined;
  const e = err as SdkErrorShape;
  return e.$metadata?.httpStatusCode ?? e.$response?.statusCode;
}

/** Classifies an error thrown by the S3 client (or lib-storage) while doing `ctx.operation`. */
export function classifyS3Failure(err: unknown, ctx: S3FailureContext): ApplicationFailure {
  const e = (typeof err === 'object' && err !== null ? err : { message: String(err) }) as SdkErrorShape;
  const status = s3ErrorStatus(err);
  const code = s3ErrorCode(err) ?? 'Error';
  // A HEAD answer has no body: the SDK then says only "UnknownError", which tells the operator nothing.
  const message =
    typeof e.message === 'string' && e.message !== code && e.message !== 'UnknownError'
      ? e.message
      : undefined;
  if (status === undefined) {
    const networkCode = e.code ?? code;
    return failure(
      FailureType.UpstreamUnavailable,
      ctx.redact(
        `S3 ${ctx.operation} ${describeTarget(ctx)} could not be reached (${networkCode}); will retry`,
      ),
      { details: { ...baseDetails(ctx), code: networkCode } },
    );
  }
  if (status >= 200 && status < 300) {
    const said = message ? `: ${ctx.redact(message.slice(0, 300))}` : '';
    return failure(
      FailureType.ContractViolation,
      `S3 ${ctx.operation} ${describeTarget(ctx)} answered ${status} with a body that does not follow the S3 protocol${said}`,
      { details: { ...baseDetails(ctx), status, code } },
    );
  }
  return classifyS3Answer(
    { code, status, message, retryAfterMs: parseRetryAfter(e.$response?.headers?.['retry-after']) },
    ctx,
  );
}

export interface S3Answer {
  /** The S3 error code (`NoSuchKey`, `SlowDown`, ...). */
  code: string;
  /** The HTTP status; absent for per-key errors inside a 200 DeleteObjects answer. */
  status?: number;
  message?: string;
  retryAfterMs?: number;
}

function baseDetails(ctx: S3FailureContext) {
  return {
    system: 'S3',
    operation: ctx.operation,
    bucket: ctx.bucket,
    ...(ctx.key === undefined ? {} : { key: ctx.key }),
  };
}

/** Classifies an error answer of the S3 server by its code, then its status (the table above). */
export function classifyS3Answer(answer: S3Answer, ctx: S3FailureContext): ApplicationFailure {
  const { code, status } = answer;
  const where = `S3 ${ctx.operation} ${describeTarget(ctx)}`;
  const said = answer.message ? `: ${answer.message.slice(0, 300)}` : '';
  const what = status === undefined ? code : `${code}, ${status}`;
  const details = { ...baseDetails(ctx), ...(status === undefined ? {} : { status }), code };
  const explain = (text: string): string => ctx.redact(`${text}${said}`);
  const s = status ?? 0;

  if (UNAUTHORIZED_CODES.has(code) || s === 401 || s === 403) {
    return failure(
      FailureType.Unauthorized,
      explain(`${where} was refused (${what}); check the access key, its secret and the bucket policy`),
      { details },
    );
  }
  if (NOT_FOUND_CODES.has(code) || s === 404 || s === 410) {
    return failure(FailureType.NotFound, explain(`${where} does not exist (${what})`), { details });
  }
  if (RATE_LIMIT_CODES.has(code) || s === 429) {
    return failure(FailureType.RateLimited, explain(`${where} is being throttled (${what}); will retry`), {
      details,
      nextRetryDelayMs: answer.retryAfterMs,
    });
  }
  if (UNSUPPORTED_CODES.has(code)) {
    return failure(
      FailureType.UpstreamRejected,
      explain(`${where}: the server does not support this operation (${what})`),
      { details },
    );
  }
  if (UNAVAILABLE_CODES.has(code) || s === 408 || s >= 500) {
    return failure(FailureType.UpstreamUnavailable, explain(`${where} failed (${what}); will retry`), {
      details,
      nextRetryDelayMs: answer.retryAfterMs,
    });
  }
  return failure(FailureType.UpstreamRejected, explain(`${where} was rejected (${what})`), { details });
}
