/**
 * Loki activities for the post-deployment error-log scan (M2): how many error lines a service logged in a
 * window, and the lines themselves for the operator.
 */
import { z } from 'zod';
import { FailureType, failure } from '../../errors';
import { cancellationSignal, heartbeat, parseActivityInput } from '../activity-support';
import type { Fetch } from '../http/http-client';
import { HttpClient } from '../http/http-client';
import { LokiQueryResponse, logqlDuration, toNanoseconds } from './loki-api';

const IsoTime = z.iso.datetime({ offset: true });

/** A LogQL stream selector, e.g. `{app="storefront", env="production"}`. */
const StreamSelector = z
  .string()
  .trim()
  .regex(/^\{.+\}$/s, 'must be a LogQL stream selector such as {app="storefront"}');

const Window = z
  .object({ selector: StreamSelector, since: IsoTime, until: IsoTime })
  .refine((i) => Date.parse(i.until) > Date.parse(i.since), { message: 'until must be after since' });

/** Input of `countErrors`: the streams and the window (ISO 8601); errors in (since, until] are counted. */
export const CountErrorsInput = Window;
export type CountErrorsInput = z.infer<typeof CountErrorsInput>;

/** Result of `countErrors`: the number of error lines and the LogQL that counted them. */
export const CountErrorsResult = z.object({
  errors: z.number().int().nonnegative(),
  query: z.string(),
  since: z.string(),
  until: z.string(),
});
export type CountErrorsResult = z.infer<typeof CountErrorsResult>;

/** Input of `errorLines`: the streams, the window [since, until) and at most `limit` lines (newest first). */
export const ErrorLinesInput = Window.and(z.object({ limit: z.number().int().min(1).max(500) }));
export type ErrorLinesInput = z.infer<typeof ErrorLinesInput>;

export const LokiLine = z.object({
  /** Nanoseconds since the epoch, as Loki gives it (a string: it does not fit a double). */
  timestampNs: z.string(),
  time: z.string(),
  labels: z.record(z.string(), z.string()),
  line: z.string(),
});
export type LokiLine = z.infer<typeof LokiLine>;

/** Result of `errorLines`: newest first; `truncated` when the window holds more than `limit` lines. */
export const ErrorLinesResult = z.object({
  lines: z.array(LokiLine),
  query: z.string(),
  truncated: z.boolean(),
});
export type ErrorLinesResult = z.infer<typeof ErrorLinesResult>;

export interface LokiActivitiesOptions {
  /** The Loki root, e.g. `http://loki:3100`. */
  baseUrl: string;
  /** Sent as `X-Scope-OrgID` when Loki runs multi-tenant (`auth_enabled: true`). */
  tenantId?: string;
  /** For a Loki behind an authenticating proxy (Loki itself has no auth); resolved by the worker. */
  bearerToken?: string;
  fetch?: Fetch;
  timeoutMs?: number;
  /**
   * The LogQL line filter that marks an error line, appended to the selector. Default
   * `|~ "(?i)(error|fatal|panic)"`; for structured logs something like `| json | level="error"` fits better.
   */
  errorFilter?: string;
  /** Lines asked for per request while paging through `errorLines`; 100 by default. */
  pageSize?: number;
  /** Longer lines are cut to this many characters (they go into workflow history); 1000 by default. */
  maxLineLength?: number;
}

export const DEFAULT_LOKI_ERROR_FILTER = '|~ "(?i)(error|fatal|panic)"';

/** Identifies a log entry: Loki keeps one copy of identical lines at the same instant in the same stream. */
function entryKey(e: { ts: bigint; labels: Record<string, string>; line: string }): string {
  const labels = Object.entries(e.labels).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return JSON.stringify([e.ts.toString(), labels, e.line]);
}

/**
 * Builds the Loki activities over a Loki (or the proxy in front of it).
 *
 * Idempotent: both activities only read. `errorLines` pages backwards through the window (Loki caps the
 * lines per request), heartbeats after every page with the lines collected so far, and follows the
 * activity's cancellation; a retry starts again from the end of the window, which is cheap and gives the
 * same answer. Failures follow the HTTP table: LogQL or parameters Loki refuses (400) are a non-retryable
 * `UpstreamRejected`; a missing or wrong tenant or proxy credential (401/403) `Unauthorized`; 429, 5xx and
 * network errors retryable; a body off the documented shapes `ContractViolation`.
 */
export function createLokiActivities(options: LokiActivitiesOptions) {
  const headers: Record<string, string> = {};
  if (options.tenantId) headers['x-scope-orgid'] = options.tenantId;
  if (options.bearerToken) headers['authorization'] = `Bearer ${options.bearerToken}`;
  const http = new HttpClient({
    system: 'Loki',
    baseUrl: options.baseUrl,
    headers,
    fetch: options.fetch,
    timeoutMs: options.timeoutMs,
  });
  const filter = options.errorFilter ?? DEFAULT_LOKI_ERROR_FILTER;
  const pageSize = options.pageSize ?? 100;
  if (!Number.isInteger(pageSize) || pageSize < 2) throw new Error('Loki pageSize must be an integer >= 2');
  const maxLineLength = options.maxLineLength ?? 1000;

  return {
    /**
     * Counts the error lines of `selector` in (since, until] with one metric query evaluated at `until`
     * over a range as long as the window: `sum(count_over_time({...} |~ "..." [5m]))`.
     */
    async countErrors(input: CountErrorsInput): Promise<CountErrorsResult> {
      const { selector, since, until } = parseActivityInput(CountErrorsInput, input, 'countErrors');
      const windowMs = Date.parse(until) - Date.parse(since);
      const query = `sum(count_over_time(${selector} ${filter} [${logqlDuration(windowMs)}]))`;
      const at = toNanoseconds(until).toString();
      const res = await http.request({
        path: '/loki/api/v1/query_range',
        query: { query, start: at, end: at, step: String(windowMs / 1000) },
        schema: LokiQueryResponse,
        signal: cancellationSignal(),
      });
      const { data } = res.body;
      if (data.resultType !== 'matrix') {
        throw failure(
          FailureType.ContractViolation,
          `countErrors: Loki answered a metric range query with ${data.resultType}`,
          { details: { query } },
        );
      }
      let errors = 0;
      for (const series of data.result) {
        const last = series.values.at(-1);
        if (last) errors += Number(last[1]);
      }
      if (!Number.isInteger(errors) || errors < 0) {
        throw failure(FailureType.ContractViolation, `countErrors: Loki counted ${errors} lines`, {
          details: { query },
        });
      }
      return { errors, query, since, until };
    },

    /** The newest error lines of `selector` in [since, until), at most `limit`. */
    async errorLines(input: ErrorLinesInput): Promise<ErrorLinesResult> {
      const { selector, since, until, limit } = parseActivityInput(ErrorLinesInput, input, 'errorLines');
      const query = `${selector} ${filter}`;
      const start = toNanoseconds(since);
      let end = toNanoseconds(until);
      const lines: LokiLine[] = [];
      // Entries at the oldest timestamp seen so far: the next page starts there again (end is exclusive).
      let atBoundary = new Set<string>();
      let truncated = false;
      let widen = false;
      for (let page = 1; ; page += 1) {
        // One line more than still needed, so a full result can tell whether the window holds more.
        const needed = limit - lines.length + atBoundary.size + 1;
        const ask = widen ? needed : Math.min(pageSize, needed);
        const res = await http.request({
          path: '/loki/api/v1/query_range',
          query: { query, start: start.toString(), end: end.toString(), limit: ask, direction: 'backward' },
          schema: LokiQueryResponse,
          signal: cancellationSignal(),
        });
        const { data } = res.body;
        if (data.resultType !== 'streams') {
          throw failure(
            FailureType.ContractViolation,
            `errorLines: Loki answered a log query with ${data.resultType}`,
            { details: { query } },
          );
        }
        const entries = data.result
          .flatMap((s) => s.values.map(([ts, line]) => ({ ts: BigInt(ts), labels: s.stream, line })))
          .sort((a, b) => (a.ts === b.ts ? 0 : a.ts > b.ts ? -1 : 1));
        let added = 0;
        for (const e of entries) {
          if (atBoundary.has(entryKey(e))) continue;
          if (lines.length === limit) {
            truncated = true;
            break;
          }
          lines.push({
            timestampNs: e.ts.toString(),
            time: new Date(Number(e.ts / 1_000_000n)).toISOString(),
            labels: e.labels,
            line: e.line.length > maxLineLength ? `${e.line.slice(0, maxLineLength)}…` : e.line,
          });
          added += 1;
        }
        heartbeat({ page, lines: lines.length });
        if (truncated || entries.length < ask) break;
        if (added === 0) {
          // A full page of lines that share the boundary timestamp and were all seen already: ask once for
          // enough lines to get past them, then give up.
          if (widen) {
            truncated = true;
            break;
          }
          widen = true;
          continue;
        }
        widen = false;
        const oldest = entries[entries.length - 1]?.ts ?? start;
        atBoundary = new Set(entries.filter((e) => e.ts === oldest).map(entryKey));
        end = oldest + 1n;
      }
      return { lines, query, truncated };
    },
  };
}

export type LokiActivities = ReturnType<typeof createLokiActivities>;
