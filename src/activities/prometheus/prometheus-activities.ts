/**
 * Prometheus activities: PromQL instant and range queries with numeric results, and the two samples the
 * release workflows decide on: the error rate of a service over a window (M4, automatic rollback) and a
 * latency quantile from a histogram (M3, performance baseline).
 */
import { z } from 'zod';
import { FailureType, failure } from '../../errors';
import { cancellationSignal, parseActivityInput } from '../activity-support';
import type { Fetch } from '../http/http-client';
import { HttpClient } from '../http/http-client';
import type { PromFloatPoint, PromLabels, PromQueryData } from './prometheus-api';
import { PromQueryResponse, promqlString, sampleNumber } from './prometheus-api';

/** One numeric sample. `value` is null for NaN and ±Inf, which JSON cannot carry; `raw` says which. */
export const PromSample = z.object({
  labels: z.record(z.string(), z.string()),
  timestampMs: z.number(),
  value: z.number().nullable(),
  raw: z.string(),
});
export type PromSample = z.infer<typeof PromSample>;

const IsoTime = z.iso.datetime({ offset: true });

/** Input of `queryInstant`: PromQL and the evaluation time (ISO 8601; now when absent). */
export const QueryInstantInput = z.object({ query: z.string().min(1), time: IsoTime.optional() });
export type QueryInstantInput = z.infer<typeof QueryInstantInput>;

/** Result of `queryInstant`: a vector's samples, or one unlabelled sample for a scalar. */
export const QueryInstantResult = z.object({
  resultType: z.enum(['vector', 'scalar']),
  samples: z.array(PromSample),
  warnings: z.array(z.string()),
});
export type QueryInstantResult = z.infer<typeof QueryInstantResult>;

/** Input of `queryRange`: PromQL over [start, end] (ISO 8601) at a resolution of `stepSeconds`. */
export const QueryRangeInput = z
  .object({
    query: z.string().min(1),
    start: IsoTime,
    end: IsoTime,
    stepSeconds: z.number().positive(),
  })
  .refine((i) => Date.parse(i.end) >= Date.parse(i.start), { message: 'end must not be before start' });
export type QueryRangeInput = z.infer<typeof QueryRangeInput>;

/** Result of `queryRange`: one entry per series, its float samples in time order. */
export const QueryRangeResult = z.object({
  series: z.array(z.object({ labels: z.record(z.string(), z.string()), samples: z.array(PromSample) })),
  warnings: z.array(z.string()),
});
export type QueryRangeResult = z.infer<typeof QueryRangeResult>;

/** Input of `sampleErrorRate`: the service (label value), the window, and how much traffic makes a verdict. */
/** Further label matchers (`{color: "green"}`): names as PromQL allows, values matched exactly. */
const ExtraLabels = z.record(
  z.string().regex(/^[a-zA-Z_][a-zA-Z0-9_]*$/, 'must be a label name'),
  z.string(),
);

export const SampleErrorRateInput = z.object({
  service: z.string().min(1),
  /** Narrows the sample to one colour or environment, e.g. `{color: "green"}` during a canary. */
  labels: ExtraLabels.optional(),
  windowSeconds: z.number().int().positive(),
  minRequests: z.number().nonnegative(),
  /** Evaluation time (ISO 8601); now when absent. */
  time: IsoTime.optional(),
});
export type SampleErrorRateInput = z.infer<typeof SampleErrorRateInput>;

/**
 * Result of `sampleErrorRate`. `errorRate` is errors / requests over the window (0..1), null when there
 * was no traffic. `decision` is `insufficient-data` when fewer than `minRequests` requests were seen: the
 * rate then says nothing and a workflow must not roll back (or promote) on it.
 */
export const SampleErrorRateResult = z.object({
  errorRate: z.number().nullable(),
  requests: z.number(),
  /** The PromQL of the error rate, to paste into Grafana. */
  query: z.string(),
  /** The PromQL of the request count. */
  requestsQuery: z.string(),
  evaluatedAt: z.string(),
  decision: z.enum(['ok', 'insufficient-data']),
});
export type SampleErrorRateResult = z.infer<typeof SampleErrorRateResult>;

/** Input of `sampleLatency`: the quantile (0..1) of the request-duration histogram, optionally per service. */
export const SampleLatencyInput = z.object({
  quantile: z.number().min(0).max(1),
  service: z.string().min(1).optional(),
  /** Further label matchers, as for `sampleErrorRate`. */
  labels: ExtraLabels.optional(),
  /** Rate window; 300 s by default. */
  windowSeconds: z.number().int().positive().default(300),
  time: IsoTime.optional(),
});
export type SampleLatencyInput = z.input<typeof SampleLatencyInput>;

/**
 * Result of `sampleLatency`. `seconds` is null when there is no data (`insufficient-data`) or when the
 * quantile lies in the `+Inf` bucket (`raw: "+Inf"`, decision `ok`: slower than the highest bucket bound).
 */
export const SampleLatencyResult = z.object({
  seconds: z.number().nullable(),
  raw: z.string().nullable(),
  query: z.string(),
  evaluatedAt: z.string(),
  decision: z.enum(['ok', 'insufficient-data']),
});
export type SampleLatencyResult = z.infer<typeof SampleLatencyResult>;

/** Metric and label names of the HTTP metrics; the defaults follow the common client-library naming. */
export interface PrometheusMetricNames {
  /** Counter of handled requests. */
  requestsTotal: string;
  /** Buckets of the request-duration histogram, in seconds. */
  durationBucket: string;
  serviceLabel: string;
  statusLabel: string;
  /** Regular expression (RE2) over the status label that counts as an error. */
  errorStatusRegex: string;
}

export const DEFAULT_PROMETHEUS_METRIC_NAMES: PrometheusMetricNames = {
  requestsTotal: 'http_requests_total',
  durationBucket: 'http_request_duration_seconds_bucket',
  serviceLabel: 'service',
  statusLabel: 'status',
  errorStatusRegex: '5..',
};

export interface PrometheusActivitiesOptions {
  /** The server root, e.g. `http://prometheus:9090` (the API lives below `/api/v1`). */
  baseUrl: string;
  /** For a Prometheus behind an authenticating proxy; resolved by the worker, never logged. */
  bearerToken?: string;
  fetch?: Fetch;
  timeoutMs?: number;
  metrics?: Partial<PrometheusMetricNames>;
}

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

function checkMetricNames(names: PrometheusMetricNames): void {
  for (const key of ['requestsTotal', 'durationBucket'] as const)
    if (!METRIC_NAME.test(names[key])) throw new Error(`Prometheus metric name ${key} is not a metric name`);
  for (const key of ['serviceLabel', 'statusLabel'] as const)
    if (!LABEL_NAME.test(names[key])) throw new Error(`Prometheus label name ${key} is not a label name`);
}

/** `a="x",b="y"`: exact matchers, in the order given. */
function matchers(labels: Record<string, string>): string {
  return Object.entries(labels)
    .map(([name, value]) => `${name}=${promqlString(value)}`)
    .join(',');
}

const toSeconds = (iso: string): string => String(Date.parse(iso) / 1000);

function toSample(labels: PromLabels, [seconds, raw]: PromFloatPoint): PromSample {
  return { labels, timestampMs: Math.round(seconds * 1000), value: sampleNumber(raw), raw };
}

/**
 * Builds the Prometheus activities over a server (or an authenticating proxy in front of it).
 *
 * Idempotent: every activity only reads. Failures follow the HTTP table: PromQL the server cannot parse
 * or execute (400, 422) is a non-retryable `UpstreamRejected`; an unreachable or overloaded server (5xx,
 * network, timeout) a retryable `UpstreamUnavailable`; a proxy's 401/403 `Unauthorized`; a body off the
 * OpenAPI contract `ContractViolation`; a query whose result is not numeric (a string, native histograms)
 * `InvalidInput`. Queries are short: they are bounded by the timeout and follow the activity's
 * cancellation, and do not heartbeat.
 *
 * @throws Error at construction when a configured metric or label name is not valid PromQL.
 */
export function createPrometheusActivities(options: PrometheusActivitiesOptions) {
  const names: PrometheusMetricNames = { ...DEFAULT_PROMETHEUS_METRIC_NAMES, ...options.metrics };
  checkMetricNames(names);
  const http = new HttpClient({
    system: 'Prometheus',
    baseUrl: options.baseUrl,
    headers: options.bearerToken ? { authorization: `Bearer ${options.bearerToken}` } : {},
    fetch: options.fetch,
    timeoutMs: options.timeoutMs,
  });

  async function instant(query: string, timeIso: string | undefined, activity: string) {
    const res = await http.request({
      path: '/api/v1/query',
      query: { query, time: timeIso === undefined ? undefined : toSeconds(timeIso) },
      schema: PromQueryResponse,
      signal: cancellationSignal(),
    });
    return { data: numericData(res.body.data, activity), warnings: res.body.warnings ?? [] };
  }

  function numericData(data: PromQueryData, activity: string): PromQueryData {
    if (data.resultType === 'string') {
      throw failure(FailureType.InvalidInput, `${activity}: the query returns a string; ask for numbers`);
    }
    const histograms =
      data.resultType === 'vector'
        ? data.result.some((s) => s.histogram !== undefined)
        : data.resultType === 'matrix' && data.result.some((s) => s.histograms !== undefined);
    if (histograms) {
      throw failure(
        FailureType.InvalidInput,
        `${activity}: the query returns native histograms; wrap it in histogram_quantile(), histogram_count() or histogram_sum()`,
      );
    }
    return data;
  }

  function vectorSamples(data: PromQueryData): PromSample[] {
    if (data.resultType === 'scalar') return [toSample({}, data.result)];
    if (data.resultType === 'vector')
      return data.result.flatMap((s) => (s.value ? [toSample(s.metric, s.value)] : []));
    return [];
  }

  /** The single value of an aggregated query, or undefined when the vector is empty. */
  function singleSample(data: PromQueryData, query: string, activity: string): PromSample | undefined {
    const samples = vectorSamples(data);
    if (samples.length > 1) {
      throw failure(
        FailureType.ContractViolation,
        `${activity}: Prometheus returned ${samples.length} series for an aggregated query`,
        { details: { query } },
      );
    }
    return samples[0];
  }

  return {
    /** Evaluates PromQL at one instant; a range-vector query is refused by Prometheus (400). */
    async queryInstant(input: QueryInstantInput): Promise<QueryInstantResult> {
      const { query, time } = parseActivityInput(QueryInstantInput, input, 'queryInstant');
      const { data, warnings } = await instant(query, time, 'queryInstant');
      if (data.resultType === 'matrix') {
        throw failure(
          FailureType.InvalidInput,
          'queryInstant: the query returns a range vector; use queryRange or aggregate it over time',
        );
      }
      return {
        resultType: data.resultType === 'scalar' ? 'scalar' : 'vector',
        samples: vectorSamples(data),
        warnings,
      };
    },

    /** Evaluates PromQL over a time range. */
    async queryRange(input: QueryRangeInput): Promise<QueryRangeResult> {
      const { query, start, end, stepSeconds } = parseActivityInput(QueryRangeInput, input, 'queryRange');
      const res = await http.request({
        path: '/api/v1/query_range',
        query: { query, start: toSeconds(start), end: toSeconds(end), step: String(stepSeconds) },
        schema: PromQueryResponse,
        signal: cancellationSignal(),
      });
      const data = numericData(res.body.data, 'queryRange');
      if (data.resultType !== 'matrix') {
        throw failure(
          FailureType.ContractViolation,
          `queryRange: Prometheus answered a range query with a ${data.resultType}`,
        );
      }
      return {
        series: data.result.map((s) => ({
          labels: s.metric,
          samples: (s.values ?? []).map((p) => toSample(s.metric, p)),
        })),
        warnings: res.body.warnings ?? [],
      };
    },

    /**
     * Error rate of `service` over the last `windowSeconds`: the increase of the error-status requests over
     * the increase of all requests (both evaluated at the same instant).
     */
    async sampleErrorRate(input: SampleErrorRateInput): Promise<SampleErrorRateResult> {
      const { service, labels, windowSeconds, minRequests, time } = parseActivityInput(
        SampleErrorRateInput,
        input,
        'sampleErrorRate',
      );
      const evaluatedAt = time ?? new Date().toISOString();
      const svc = matchers({ [names.serviceLabel]: service, ...labels });
      const requestsQuery = `sum(increase(${names.requestsTotal}{${svc}}[${windowSeconds}s]))`;
      const errorsQuery = `sum(increase(${names.requestsTotal}{${svc},${names.statusLabel}=~${promqlString(names.errorStatusRegex)}}[${windowSeconds}s]))`;
      // `or vector(0)`: a service without any error series has an error rate of 0, not "no data".
      const query = `(${errorsQuery} or vector(0)) / ${requestsQuery}`;
      const [rate, requests] = await Promise.all([
        instant(query, evaluatedAt, 'sampleErrorRate'),
        instant(requestsQuery, evaluatedAt, 'sampleErrorRate'),
      ]);
      const requestCount = singleSample(requests.data, requestsQuery, 'sampleErrorRate')?.value ?? 0;
      const errorRate = singleSample(rate.data, query, 'sampleErrorRate')?.value ?? null;
      const enough = errorRate !== null && requestCount > 0 && requestCount >= minRequests;
      return {
        errorRate,
        requests: requestCount,
        query,
        requestsQuery,
        evaluatedAt,
        decision: enough ? 'ok' : 'insufficient-data',
      };
    },

    /** The `quantile` of request durations over the window, from the duration histogram's buckets. */
    async sampleLatency(input: SampleLatencyInput): Promise<SampleLatencyResult> {
      const { quantile, service, labels, windowSeconds, time } = parseActivityInput(
        SampleLatencyInput,
        input,
        'sampleLatency',
      );
      const evaluatedAt = time ?? new Date().toISOString();
      const wanted = { ...(service === undefined ? {} : { [names.serviceLabel]: service }), ...labels };
      const selector = Object.keys(wanted).length === 0 ? '' : `{${matchers(wanted)}}`;
      const query = `histogram_quantile(${quantile}, sum by (le) (rate(${names.durationBucket}${selector}[${windowSeconds}s])))`;
      const { data } = await instant(query, evaluatedAt, 'sampleLatency');
      const sample = singleSample(data, query, 'sampleLatency');
      const noData = sample === undefined || sample.raw === 'NaN';
      return {
        seconds: sample?.value ?? null,
        raw: sample?.raw ?? null,
        query,
        evaluatedAt,
        decision: noData ? 'insufficient-data' : 'ok',
      };
    },
  };
}

export type PrometheusActivities = ReturnType<typeof createPrometheusActivities>;
