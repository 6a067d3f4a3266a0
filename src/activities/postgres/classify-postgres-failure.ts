/**
 * The one table that turns a PostgreSQL failure (an error from the `pg` driver, or the exit of `pg_dump` /
 * `pg_restore` with its stderr) into a failure of the closed list in src/errors.ts:
 *
 * | what happened                                                     | type                | retry |
 * | ----------------------------------------------------------------- | ------------------- | ----- |
 * | connection refused / reset / terminated / timed out, no route     | UpstreamUnavailable | yes   |
 * | SQLSTATE class 08 (connection exception)                          | UpstreamUnavailable | yes   |
 * | 57P01-57P03 (server shutting down, starting up), 53xxx (resources) | UpstreamUnavailable | yes   |
 * | 40001 serialization failure, 40P01 deadlock, 55P03 lock timeout   | UpstreamUnavailable | yes   |
 * | 28000, 28P01 (authentication), 42501 (insufficient privilege)     | Unauthorized        | no    |
 * | 3D000 (database does not exist)                                   | NotFound            | no    |
 * | any other SQL error                                               | OperationFailed     | no    |
 * | pg_dump / pg_restore exit code != 0 (not one of the above)        | OperationFailed     | no    |
 *
 * Every message passes through the SecretRedactor before it leaves: the password is never in argv or in
 * our own text, and the redactor is the last line of defence for anything a server or tool echoes.
 */
import type { ApplicationFailure } from '@temporalio/common';
import type { SecretRedactor } from '../../config/credential-ref';
import { FailureType, failure } from '../../errors';

export interface PostgresFailureContext {
  /** What we were doing, for the operator: `apply migration 003_orders.sql`, `pg_dump of shop`. */
  operation: string;
  redactor: SecretRedactor;
}

/** Node socket error codes that mean "the server was not reachable or went away". */
const NETWORK_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ECONNABORTED',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EHOSTDOWN',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EPIPE',
]);

/** Driver messages (no SQLSTATE) that mean the connection broke or never came up. */
const NETWORK_MESSAGES = [
  /connection terminated/i,
  /connection timeout/i,
  /timeout expired/i,
  /server closed the connection unexpectedly/i,
  /connection refused/i,
  /could not connect to server/i,
  /no route to host/i,
  /could not translate host name/i,
  /the database system is (starting up|shutting down|in recovery mode)/i,
  /terminating connection due to administrator command/i,
  /Connection timed out/i,
  // pg.Pool: no connection came free, or none could be opened, within its connect timeout.
  /timeout exceeded when trying to connect/i,
];

const RETRYABLE_SQLSTATES = new Set(['57P01', '57P02', '57P03', '40001', '40P01', '55P03']);
const AUTH_SQLSTATES = new Set(['28000', '28P01', '42501']);

export type PostgresFailureClass = 'unavailable' | 'unauthorized' | 'not-found' | 'failed';

/** The row of the table above for a SQLSTATE (undefined when the error has none). */
export function classifySqlState(code: string | undefined): PostgresFailureClass | undefined {
  if (!code || !/^[0-9A-Z]{5}$/.test(code)) return undefined;
  if (code.startsWith('08') || code.startsWith('53') || RETRYABLE_SQLSTATES.has(code)) return 'unavailable';
  if (AUTH_SQLSTATES.has(code)) return 'unauthorized';
  if (code === '3D000') return 'not-found';
  return 'failed';
}

/** The row of the table above for a tool's stderr (pg_dump and pg_restore have no SQLSTATE to show). */
export function classifyToolOutput(stderr: string): PostgresFailureClass {
  if (/password authentication failed|no pg_hba\.conf entry|role "[^"]*" does not exist/i.test(stderr))
    return 'unauthorized';
  if (/database "[^"]*" does not exist/i.test(stderr)) return 'not-found';
  if (NETWORK_MESSAGES.some((re) => re.test(stderr))) return 'unavailable';
  if (/permission denied/i.test(stderr)) return 'unauthorized';
  return 'failed';
}

function errorCode(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}

function errorMessage(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}

function build(
  cls: PostgresFailureClass,
  ctx: PostgresFailureContext,
  said: string,
  details: Record<string, unknown>,
): ApplicationFailure {
  const where = ctx.redactor.redact(ctx.operation);
  const text = ctx.redactor.redact(said);
  const safeDetails = { ...details, operation: where };
  switch (cls) {
    case 'unavailable':
      return failure(
        FailureType.UpstreamUnavailable,
        `PostgreSQL ${where}: the server is unreachable or went away (${text}); will retry`,
        { details: safeDetails },
      );
    case 'unauthorized':
      return failure(
        FailureType.Unauthorized,
        `PostgreSQL ${where}: ${text}; check the database credential and its privileges`,
        { details: safeDetails },
      );
    case 'not-found':
      return failure(FailureType.NotFound, `PostgreSQL ${where}: ${text}; check the configured database`, {
        details: safeDetails,
      });
    case 'failed':
      return failure(FailureType.OperationFailed, `PostgreSQL ${where} failed: ${text}`, {
        details: safeDetails,
      });
  }
}

/** Classifies an error thrown by the `pg` driver (connect or query). */
export function classifyPostgresError(err: unknown, ctx: PostgresFailureContext): ApplicationFailure {
  const code = errorCode(err);
  const message = errorMessage(err);
  const sqlState = code && /^[0-9A-Z]{5}$/.test(code) ? code : undefined;
  let cls = classifySqlState(sqlState);
  if (!cls) {
    cls =
      (code && NETWORK_CODES.has(code)) || NETWORK_MESSAGES.some((re) => re.test(message))
        ? 'unavailable'
        : 'failed';
  }
  const said = sqlState ? `${message} [SQLSTATE ${sqlState}]` : code ? `${message} [${code}]` : message;
  return build(cls, ctx, said, { sqlState, code: sqlState ? undefined : code });
}

/** Classifies a failed run of `pg_dump` / `pg_restore` from its exit code and stderr. */
export function classifyToolFailure(
  tool: string,
  exit: { code: number | null; signal: NodeJS.Signals | null },
  stderr: string,
  ctx: PostgresFailureContext,
): ApplicationFailure {
  const tail = stderr.trim().slice(-1500) || '(no output)';
  const how = exit.signal ? `was killed by ${exit.signal}` : `exited with code ${String(exit.code)}`;
  return build(classifyToolOutput(stderr), ctx, `${tool} ${how}: ${tail}`, {
    tool,
    exitCode: exit.code,
    signal: exit.signal,
  });
}
