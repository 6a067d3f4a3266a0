/**
 * A Prometheus fake on 127.0.0.1: the part of the HTTP API the Prometheus activities use, `GET`/`POST
 * /api/v1/query` and `/api/v1/query_range`, answering from a scripted traffic model instead of a TSDB.
 *
 * Every request is checked against Prometheus's own OpenAPI description
 * (`src/sandbox/fakes/specs/prometheus-openapi-3.1.yaml`, the file the server serves at
 * `/api/v1/openapi.yaml`) and every answer before it is sent; what breaks the contract lands in
 * `violations`, which tests expect empty.
 *
 * PromQL: the fake evaluates exactly the queries `sampleErrorRate` and `sampleLatency` build
 * (src/activities/prometheus/prometheus-activities.ts, default metric names), with `name="value"` matchers:
 *
 * - `sum(increase(http_requests_total{service="S",…}[Ns]))`: the requests of the window;
 * - `(sum(increase(http_requests_total{service="S",…,status=~"5.."}[Ns])) or vector(0)) / <the above>`:
 *   errors over requests (NaN without requests, as 0/0 is in PromQL);
 * - `histogram_quantile(Q, sum by (le) (rate(http_request_duration_seconds_bucket{…}[Ns])))`, the selector
 *   optional: request durations are modelled as spread evenly between 0 and `p95Seconds / 0.95`, so the
 *   quantile Q is `p95Seconds * Q / 0.95`; without a service matcher the known services are combined,
 *   weighted by their requests.
 *
 * Any other query gets Prometheus's `400 bad_data` error. A model that answers `'down'` makes every query
 * touching the service a `503 unavailable`; `'empty'` means no series at all (an empty vector).
 */
import fs from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';
import { OpenApiContract, type MatchedOperation } from './openapi-contract';
import type { FakeResponse, RecordedRequest } from './scripted-http-server';
import { ScriptedHttpServer } from './scripted-http-server';

export const PROMETHEUS_SPEC = path.join(__dirname, 'specs', 'prometheus-openapi-3.1.yaml');
let specDocument: Record<string, unknown> | undefined;

/** The traffic of one service over a window ending at the evaluation time. */
export interface TrafficSample {
  /** Requests handled in the window (the `increase` of the request counter). */
  requests: number;
  /** Of which answered with a 5xx status. */
  errors: number;
  /** The 95th percentile of request durations; absent: the service exports no duration histogram. */
  p95Seconds?: number;
}

/** A sample, or Prometheus unavailable (`'down'`), or no series for the service at all (`'empty'`). */
export type TrafficAnswer = TrafficSample | 'down' | 'empty';

/**
 * The traffic of a service as a function of the evaluation time (ms since the epoch) and the window
 * (seconds). `labels` are the matchers of the query besides `service` (e.g. `{color: "green"}`).
 */
export type TrafficModel = (
  atMs: number,
  windowSeconds: number,
  labels: Record<string, string>,
) => TrafficAnswer;

/** 1000 requests a minute, 0.2 % of them errors, p95 at 120 ms: a healthy service. */
export const HEALTHY_TRAFFIC: TrafficModel = (_atMs, windowSeconds) => {
  const requests = (1000 * windowSeconds) / 60;
  return { requests, errors: requests * 0.002, p95Seconds: 0.12 };
};

/** A query the fake answered (or refused), in arrival order. */
export interface RecordedQuery {
  endpoint: 'query' | 'query_range';
  query: string;
  /** The evaluation time; for a range query its end. */
  atMs: number;
  /** For a range query: its start and step. */
  range?: { startMs: number; stepSeconds: number };
}

export interface PrometheusFakeOptions {
  /** Services a query without a service matcher covers (besides every scripted one). */
  services?: string[];
  /** When set, an authenticating proxy in front demands `Authorization: Bearer <token>`. */
  bearerToken?: string;
}

type Selector = { service?: string; labels: Record<string, string> };

type ParsedQuery =
  | { kind: 'requests'; selector: Selector; windowSeconds: number }
  | { kind: 'error-rate'; selector: Selector; windowSeconds: number }
  | { kind: 'latency'; quantile: number; selector: Selector; windowSeconds: number };

/** A value at one instant: a number, or no series. */
type Point = number | undefined;

class BadData extends Error {}
class Unavailable extends Error {}

const STRING = String.raw`"(?:[^"\\]|\\.)*"`;
const MATCHER = String.raw`[a-zA-Z_][a-zA-Z0-9_]*=${STRING}`;
const MATCHERS = `${MATCHER}(?:,${MATCHER})*`;
const NUMBER = String.raw`\d+(?:\.\d+)?(?:e[+-]?\d+)?`;

const REQUESTS = new RegExp(String.raw`^sum\(increase\(http_requests_total\{(${MATCHERS})\}\[(\d+)s\]\)\)$`);
const ERROR_RATE = new RegExp(
  String.raw`^\(sum\(increase\(http_requests_total\{(${MATCHERS}),status=~"5\.\."\}\[(\d+)s\]\)\) or vector\(0\)\) / ` +
    String.raw`sum\(increase\(http_requests_total\{(${MATCHERS})\}\[(\d+)s\]\)\)$`,
);
const LATENCY = new RegExp(
  String.raw`^histogram_quantile\((${NUMBER}), sum by \(le\) \(rate\(http_request_duration_seconds_bucket(?:\{(${MATCHERS})\})?\[(\d+)s\]\)\)\)$`,
);

function parseSelector(text: string | undefined): Selector {
  const labels: Record<string, string> = {};
  for (const [, name = '', literal = '""'] of (text ?? '').matchAll(
    new RegExp(String.raw`([a-zA-Z_][a-zA-Z0-9_]*)=(${STRING})`, 'g'),
  )) {
    if (name in labels) throw new BadData(`label ${name} is matched twice`);
    labels[name] = JSON.parse(literal) as string;
  }
  const { service, ...rest } = labels;
  return service === undefined ? { labels: rest } : { service, labels: rest };
}

function sameSelector(a: Selector, b: Selector): boolean {
  return a.service === b.service && JSON.stringify(a.labels) === JSON.stringify(b.labels);
}

/** Parses one of the supported query shapes; anything else is `BadData`. */
export function parseSupportedQuery(query: string): ParsedQuery {
  const unsupported = () =>
    new BadData(
      `1:1: parse error: the sandbox Prometheus evaluates only the queries of sampleErrorRate and sampleLatency, not ${JSON.stringify(query)}`,
    );
  let m = REQUESTS.exec(query);
  if (m) {
    const selector = parseSelector(m[1]);
    if (selector.service === undefined) throw unsupported();
    return { kind: 'requests', selector, windowSeconds: Number(m[2]) };
  }
  m = ERROR_RATE.exec(query);
  if (m) {
    const errors = parseSelector(m[1]);
    const requests = parseSelector(m[3]);
    if (errors.service === undefined || !sameSelector(errors, requests) || m[2] !== m[4]) throw unsupported();
    return { kind: 'error-rate', selector: requests, windowSeconds: Number(m[4]) };
  }
  m = LATENCY.exec(query);
  if (m) {
    const quantile = Number(m[1]);
    return { kind: 'latency', quantile, selector: parseSelector(m[2]), windowSeconds: Number(m[3]) };
  }
  throw unsupported();
}

/** A sample value as Prometheus writes it. */
function formatValue(value: number): string {
  if (Number.isNaN(value)) return 'NaN';
  if (value === Infinity) return '+Inf';
  if (value === -Infinity) return '-Inf';
  return String(value);
}

const DURATION = /^(\d+(?:ms|s|m|h|d|w|y))+$/;
const DURATION_MS: Record<string, number> = {
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
  w: 604_800_000,
  y: 31_536_000_000,
};

/** A timestamp parameter: Unix seconds (float) or RFC 3339, in ms. */
function parseTime(name: string, text: string): number {
  const seconds = Number(text);
  const ms = text.trim() !== '' && Number.isFinite(seconds) ? seconds * 1000 : Date.parse(text);
  if (!Number.isFinite(ms)) {
    throw new BadData(`invalid parameter "${name}": cannot parse "${text}" to a valid timestamp`);
  }
  return ms;
}

/** A step or duration parameter: float seconds or a Prometheus duration, in seconds. */
function parseStep(text: string): number {
  let seconds = Number(text);
  if (text.trim() === '' || !Number.isFinite(seconds)) {
    if (!DURATION.test(text)) {
      throw new BadData(`invalid parameter "step": cannot parse "${text}" to a valid duration`);
    }
    seconds = 0;
    for (const [, n, unit] of text.matchAll(/(\d+)(ms|s|m|h|d|w|y)/g)) {
      seconds += (Number(n) * (DURATION_MS[unit ?? 's'] ?? 0)) / 1000;
    }
  }
  if (seconds <= 0) {
    throw new BadData(
      'invalid parameter "step": zero or negative query resolution step widths are not accepted. Try a positive integer',
    );
  }
  return seconds;
}

/**
 * The fake. Script it per service with {@link PrometheusFake.setTraffic}; services without a script follow
 * `defaultTraffic` ({@link HEALTHY_TRAFFIC} until changed).
 */
export class PrometheusFake {
  readonly queries: RecordedQuery[] = [];
  /** The model of every service without its own script. */
  defaultTraffic: TrafficModel = HEALTHY_TRAFFIC;
  private readonly traffic = new Map<string, TrafficModel>();
  private readonly contract: OpenApiContract;

  private constructor(
    readonly server: ScriptedHttpServer,
    private readonly options: PrometheusFakeOptions,
    document: Record<string, unknown>,
  ) {
    this.contract = new OpenApiContract(document, {
      formats: {
        // Prometheus's own senses of these formats: `1m30s` durations, Unix seconds as a number.
        duration: DURATION,
        unixtime: { type: 'number', validate: (v: number) => Number.isFinite(v) },
      },
    });
  }

  /** Starts the fake on a free 127.0.0.1 port. */
  static async start(options: PrometheusFakeOptions = {}): Promise<PrometheusFake> {
    // Parsing the YAML takes a good part of a second; the document is only read, so parse it once.
    specDocument ??= YAML.parse(fs.readFileSync(PROMETHEUS_SPEC, 'utf8')) as Record<string, unknown>;
    const document = specDocument;
    let fake: PrometheusFake | undefined;
    await ScriptedHttpServer.start((server) => {
      const created = new PrometheusFake(server, options, document);
      fake = created;
      return (req) => created.handle(req);
    });
    if (!fake) throw new Error('PrometheusFake did not start');
    return fake;
  }

  /** The server root, `http://127.0.0.1:<port>` (the API is below `/api/v1`). */
  get baseUrl(): string {
    return this.server.baseUrl;
  }

  /** Requests and answers that broke the OpenAPI description; a test expects none. */
  get violations(): string[] {
    return this.server.violations;
  }

  /**
   * Scripts the traffic of `service`: a model, or one fixed answer for every time and window (`'down'`,
   * `'empty'`, or a sample); `undefined` drops the script, as `clearTraffic(service)` does.
   */
  setTraffic(service: string, model: TrafficModel | TrafficAnswer | undefined): void {
    if (model === undefined) this.traffic.delete(service);
    else this.traffic.set(service, typeof model === 'function' ? model : () => model);
  }

  /** Drops the script of `service` (every service when absent): back to `defaultTraffic`. */
  clearTraffic(service?: string): void {
    if (service === undefined) this.traffic.clear();
    else this.traffic.delete(service);
  }

  close(): Promise<void> {
    return this.server.close();
  }

  private modelOf(service: string): TrafficModel {
    return this.traffic.get(service) ?? this.defaultTraffic;
  }

  private sample(service: string, atMs: number, windowSeconds: number, labels: Record<string, string>) {
    const answer = this.modelOf(service)(atMs, windowSeconds, labels);
    if (answer === 'down')
      throw new Unavailable(`the sandbox made Prometheus unavailable for service ${service}`);
    return answer;
  }

  /** The value of a parsed query at one instant. */
  private evaluate(query: ParsedQuery, atMs: number): Point {
    const { selector, windowSeconds } = query;
    if (query.kind === 'latency') {
      const services =
        selector.service !== undefined
          ? [selector.service]
          : [...new Set([...(this.options.services ?? []), ...this.traffic.keys()])];
      let weighted = 0;
      let requests = 0;
      let seen = false;
      for (const service of services) {
        const s = this.sample(service, atMs, windowSeconds, selector.labels);
        if (s === 'empty' || s.p95Seconds === undefined) continue;
        seen = true;
        if (s.requests <= 0) continue;
        weighted += s.requests * s.p95Seconds * (query.quantile / 0.95);
        requests += s.requests;
      }
      if (!seen) return undefined;
      // No request in the window: every bucket's rate is 0 and histogram_quantile answers NaN.
      return requests > 0 ? weighted / requests : NaN;
    }
    const s = this.sample(selector.service ?? '', atMs, windowSeconds, selector.labels);
    if (s === 'empty') return undefined;
    return query.kind === 'requests' ? s.requests : s.errors / s.requests;
  }

  private error(status: number, errorType: string, message: string): FakeResponse {
    return { status, body: { status: 'error', errorType, error: message } };
  }

  private handle(req: RecordedRequest): FakeResponse {
    // The proxy in front answers before Prometheus sees the request (and outside its contract).
    if (this.options.bearerToken && req.headers.authorization !== `Bearer ${this.options.bearerToken}`) {
      return {
        status: 401,
        headers: { 'content-type': 'text/plain; charset=utf-8' },
        body: 'Unauthorized\n',
      };
    }
    const { operation, violations } = this.contract.validateRequest({
      method: req.method,
      path: req.url.pathname,
      query: req.url.searchParams,
      headers: req.headers,
      body: req.body,
    });
    for (const v of violations) this.server.violation(v);
    const response = this.answer(req, operation);
    if (operation) {
      const body = typeof response.body === 'string' ? response.body : JSON.stringify(response.body ?? '');
      for (const v of this.contract.validateResponse(operation, {
        status: response.status,
        contentType: response.headers?.['content-type'] ?? 'application/json',
        body,
      })) {
        this.server.violation(v);
      }
    }
    return response;
  }

  private answer(req: RecordedRequest, operation: MatchedOperation | undefined): FakeResponse {
    const endpoint =
      operation?.template === '/query'
        ? 'query'
        : operation?.template === '/query_range'
          ? 'query_range'
          : undefined;
    if (!endpoint) {
      this.server.violation(
        `${req.method} ${req.url.pathname}: the fake serves only /api/v1/query and /api/v1/query_range`,
      );
      return this.error(
        404,
        'not_found',
        'the sandbox Prometheus serves only /api/v1/query and /api/v1/query_range',
      );
    }
    // Prometheus reads form fields and URL parameters alike (Go's Request.FormValue): the body wins.
    const params = new URLSearchParams(req.url.searchParams);
    if (req.method === 'POST') for (const [k, v] of new URLSearchParams(req.body)) params.set(k, v);
    const query = params.get('query') ?? '';
    const record: RecordedQuery = { endpoint, query, atMs: Date.now() };
    this.queries.push(record);
    try {
      if (endpoint === 'query') {
        const time = params.get('time');
        if (time !== null) record.atMs = parseTime('time', time);
        const parsed = parseSupportedQuery(query);
        const value = this.evaluate(parsed, record.atMs);
        const result =
          value === undefined ? [] : [{ metric: {}, value: [record.atMs / 1000, formatValue(value)] }];
        return { status: 200, body: { status: 'success', data: { resultType: 'vector', result } } };
      }
      const startMs = parseTime('start', params.get('start') ?? '');
      const endMs = parseTime('end', params.get('end') ?? '');
      const stepSeconds = parseStep(params.get('step') ?? '');
      record.atMs = endMs;
      record.range = { startMs, stepSeconds };
      if (endMs < startMs) throw new BadData('end timestamp must not be before start time');
      if ((endMs - startMs) / 1000 / stepSeconds > 11_000) {
        throw new BadData(
          'exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution (?step=XX)',
        );
      }
      const parsed = parseSupportedQuery(query);
      const values: [number, string][] = [];
      for (let k = 0; startMs + k * stepSeconds * 1000 <= endMs; k++) {
        const at = startMs + k * stepSeconds * 1000;
        const value = this.evaluate(parsed, at);
        if (value !== undefined) values.push([at / 1000, formatValue(value)]);
      }
      const result = values.length === 0 ? [] : [{ metric: {}, values }];
      return { status: 200, body: { status: 'success', data: { resultType: 'matrix', result } } };
    } catch (err) {
      if (err instanceof BadData) return this.error(400, 'bad_data', err.message);
      if (err instanceof Unavailable) return this.error(503, 'unavailable', err.message);
      throw err;
    }
  }
}
