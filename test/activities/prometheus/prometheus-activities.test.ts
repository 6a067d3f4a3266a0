/**
 * The Prometheus activities against the real Prometheus server (Debian package `prometheus`), started here
 * on a free 127.0.0.1 port with a temporary config and storage, scraping a small in-process app whose
 * counters and histogram this file controls. Failure classes that a bare Prometheus cannot produce (401,
 * 403, 429, broken bodies, hangs) come from an authenticating proxy in front of it.
 */
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { CancelledFailure } from '@temporalio/common';
import { MockActivityEnvironment } from '@temporalio/testing';
import { DefaultLogger } from '@temporalio/worker';
import Ajv2020 from 'ajv/dist/2020';
import YAML from 'yaml';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import {
  type PrometheusActivities,
  createPrometheusActivities,
} from '../../../src/activities/prometheus/prometheus-activities';
import { ScriptedHttpServer, serialisedFailure } from '../../../src/sandbox/fakes/scripted-http-server';
import {
  type PrometheusServer,
  freeLocalPort,
  requirePrometheusBinary,
  startPrometheus,
} from '../../support/prometheus-server';
import { activityRecorder } from '../activity-recorder';

const TOKEN = 'prom-proxy-token-6c1f0e9a7b';

/**
 * The scraped app. Every scrape advances the counters by a fixed mix, so any window holds the same ratio:
 * storefront 1 error in 20 (5 %), checkout 3 in 10 (30 %); `idle` never moves. Every storefront request
 * takes between 50 and 100 ms, so its median is 75 ms and its p90 95 ms by linear interpolation.
 */
function metricsText(scrape: number): string {
  const k = scrape;
  return [
    '# HELP http_requests_total Handled HTTP requests.',
    '# TYPE http_requests_total counter',
    `http_requests_total{service="storefront",status="200"} ${19 * k}`,
    `http_requests_total{service="storefront",status="500"} ${k}`,
    `http_requests_total{service="checkout",status="200"} ${7 * k}`,
    `http_requests_total{service="checkout",status="503"} ${3 * k}`,
    'http_requests_total{service="idle",status="200"} 42',
    '# HELP http_request_duration_seconds Request duration.',
    '# TYPE http_request_duration_seconds histogram',
    'http_request_duration_seconds_bucket{service="storefront",le="0.05"} 0',
    `http_request_duration_seconds_bucket{service="storefront",le="0.1"} ${10 * k}`,
    `http_request_duration_seconds_bucket{service="storefront",le="0.25"} ${10 * k}`,
    `http_request_duration_seconds_bucket{service="storefront",le="+Inf"} ${10 * k}`,
    `http_request_duration_seconds_sum{service="storefront"} ${0.75 * k}`,
    `http_request_duration_seconds_count{service="storefront"} ${10 * k}`,
    '',
  ].join('\n');
}

let app: http.Server;
let scrapes = 0;
let prometheus: PrometheusServer | undefined;
let promUrl = '';
let proxy: ScriptedHttpServer;
/** Every failure and result this file saw, checked for the credential at the end. */

beforeAll(async () => {
  requirePrometheusBinary();
  app = http.createServer((req, res) => {
    if (req.url !== '/metrics') return res.writeHead(404).end();
    scrapes += 1;
    res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' }).end(metricsText(scrapes));
  });
  await new Promise<void>((resolve) => app.listen(0, '127.0.0.1', resolve));
  prometheus = await startPrometheus({ targets: [`127.0.0.1:${(app.address() as AddressInfo).port}`] });
  promUrl = prometheus.url;

  // An authenticating proxy in front of Prometheus, with scripted faults.
  proxy = await ScriptedHttpServer.start(() => async (req) => {
    if (req.headers.authorization !== `Bearer ${TOKEN}`) return { status: 401, body: 'Unauthorized\n' };
    const upstream = await fetch(`${promUrl}${req.url.pathname}${req.url.search}`, { method: req.method });
    return {
      status: upstream.status,
      headers: { 'content-type': upstream.headers.get('content-type') ?? 'application/json' },
      body: await upstream.text(),
    };
  });
});

afterAll(async () => {
  await proxy?.close();
  await prometheus?.stop();
  await new Promise<void>((resolve) => (app ? app.close(() => resolve()) : resolve()));
});

afterEach(() => proxy?.reset());

const env = () =>
  new MockActivityEnvironment({ activityId: 'prometheus-1' }, { logger: new DefaultLogger('ERROR') });
const direct = (): PrometheusActivities => createPrometheusActivities({ baseUrl: promUrl });
const viaProxy = (token = TOKEN): PrometheusActivities =>
  createPrometheusActivities({ baseUrl: proxy.baseUrl, bearerToken: token, timeoutMs: 2_000 });

const { seen, run, failureOf } = activityRecorder(() => env());

describe('queries against the real Prometheus', () => {
  it('answers an instant vector query with numbers', async () => {
    const res = await run(() => direct().queryInstant({ query: 'vector(42)' }));
    expect(res.resultType).toBe('vector');
    expect(res.samples).toEqual([expect.objectContaining({ labels: {}, value: 42, raw: '42' })]);
  });

  it('keeps NaN and infinities JSON-safe: value null, the raw string says which', async () => {
    const nan = await run(() => direct().queryInstant({ query: '0/0' }));
    expect(nan.resultType).toBe('scalar');
    expect(nan.samples[0]).toMatchObject({ value: null, raw: 'NaN' });
    const inf = await run(() => direct().queryInstant({ query: '-1/0' }));
    expect(inf.samples[0]).toMatchObject({ value: null, raw: '-Inf' });
  });

  it('evaluates at the requested time', async () => {
    const time = new Date(Date.now() - 60_000).toISOString();
    const res = await run(() => direct().queryInstant({ query: 'time()', time }));
    expect(res.samples[0]?.value).toBe(Date.parse(time) / 1000);
    expect(res.samples[0]?.timestampMs).toBe(Date.parse(time));
  });

  it('answers a range query with the scraped counter, sample by sample', async () => {
    await vi.waitFor(() => expect(scrapes).toBeGreaterThanOrEqual(3), { timeout: 15_000, interval: 100 });
    const end = new Date().toISOString();
    const start = new Date(Date.now() - 30_000).toISOString();
    const res = await run(() =>
      direct().queryRange({
        query: 'http_requests_total{service="storefront",status="500"}',
        start,
        end,
        stepSeconds: 1,
      }),
    );
    expect(res.series).toHaveLength(1);
    const values = res.series[0]?.samples.map((s) => s.value) ?? [];
    expect(values.length).toBeGreaterThanOrEqual(2);
    // Every value is a scrape count the app served, in order.
    for (const v of values) expect(Number.isInteger(v) && (v ?? 0) >= 1 && (v ?? 0) <= scrapes).toBe(true);
    expect([...values].sort((a, b) => (a ?? 0) - (b ?? 0))).toEqual(values);
    expect(res.series[0]?.labels).toMatchObject({ service: 'storefront', status: '500', job: 'app' });
  });

  it('sends what the official OpenAPI describes and gets answers that conform to it', async () => {
    const spec = YAML.parse(
      fs.readFileSync(
        path.join(__dirname, '../../../src/sandbox/fakes/specs/prometheus-openapi-3.1.yaml'),
        'utf8',
      ),
    ) as Record<string, unknown>;
    const ajv = new Ajv2020({ strict: false, validateFormats: false, validateSchema: false });
    ajv.addSchema({ ...spec, $id: 'prometheus-openapi' });
    const instantSchema = ajv.getSchema('prometheus-openapi#/components/schemas/QueryOutputBody');
    const rangeSchema = ajv.getSchema('prometheus-openapi#/components/schemas/QueryRangeOutputBody');
    if (!instantSchema || !rangeSchema) throw new Error('schemas missing from the OpenAPI document');
    const broken = {
      status: 'success',
      data: { resultType: 'vector', result: [{ metric: {}, value: [1] }] },
    };
    expect(instantSchema(broken)).toBe(false);
    const bodies: { path: string; body: unknown }[] = [];
    const recording = createPrometheusActivities({
      baseUrl: promUrl,
      fetch: async (url, init) => {
        const res = await fetch(url, init);
        const href = url instanceof Request ? url.url : url.toString();
        bodies.push({ path: new URL(href).pathname, body: await res.clone().json() });
        return res;
      },
    });
    await run(() => recording.queryInstant({ query: 'sum by (status) (http_requests_total)' }));
    await run(() => recording.queryInstant({ query: '1/0' }));
    await run(() =>
      recording.queryRange({
        query: 'http_requests_total',
        start: new Date(Date.now() - 10_000).toISOString(),
        end: new Date().toISOString(),
        stepSeconds: 2,
      }),
    );
    expect(bodies.map((b) => b.path)).toEqual(['/api/v1/query', '/api/v1/query', '/api/v1/query_range']);
    for (const { path: p, body } of bodies) {
      const validate = p.endsWith('query_range') ? rangeSchema : instantSchema;
      expect(validate(body), JSON.stringify(validate.errors)).toBe(true);
    }
  });
});

describe('sampleErrorRate and sampleLatency (M3, M4) against the real Prometheus', () => {
  it('computes the error rate the counters imply', async () => {
    const acts = direct();
    const storefront = await vi.waitFor(
      async () => {
        const r = await run(() =>
          acts.sampleErrorRate({ service: 'storefront', windowSeconds: 60, minRequests: 20 }),
        );
        expect(r.decision).toBe('ok');
        return r;
      },
      { timeout: 20_000, interval: 250 },
    );
    expect(storefront.errorRate).toBeCloseTo(0.05, 9);
    expect(storefront.requests).toBeGreaterThanOrEqual(20);
    expect(storefront.query).toBe(
      '(sum(increase(http_requests_total{service="storefront",status=~"5.."}[60s])) or vector(0)) / sum(increase(http_requests_total{service="storefront"}[60s]))',
    );
    const checkout = await run(() =>
      acts.sampleErrorRate({ service: 'checkout', windowSeconds: 60, minRequests: 1 }),
    );
    expect(checkout.errorRate).toBeCloseTo(0.3, 9);
    expect(checkout.decision).toBe('ok');
  });

  it('says insufficient-data when the service had too little or no traffic', async () => {
    await vi.waitFor(() => expect(scrapes).toBeGreaterThanOrEqual(3), { timeout: 15_000, interval: 100 });
    const acts = direct();
    const idle = await run(() =>
      acts.sampleErrorRate({ service: 'idle', windowSeconds: 60, minRequests: 1 }),
    );
    expect(idle).toMatchObject({ decision: 'insufficient-data', requests: 0, errorRate: null });
    const ghost = await run(() =>
      acts.sampleErrorRate({ service: 'ghost', windowSeconds: 60, minRequests: 0 }),
    );
    expect(ghost).toMatchObject({ decision: 'insufficient-data', requests: 0, errorRate: null });
    const tooFew = await run(() =>
      acts.sampleErrorRate({ service: 'storefront', windowSeconds: 60, minRequests: 1e9 }),
    );
    expect(tooFew.decision).toBe('insufficient-data');
    expect(tooFew.errorRate).toBeCloseTo(0.05, 9);
  });

  it('reads a latency quantile from the histogram', async () => {
    const acts = direct();
    const median = await vi.waitFor(
      async () => {
        const r = await run(() =>
          acts.sampleLatency({ quantile: 0.5, service: 'storefront', windowSeconds: 60 }),
        );
        expect(r.decision).toBe('ok');
        return r;
      },
      { timeout: 20_000, interval: 250 },
    );
    expect(median.seconds).toBeCloseTo(0.075, 9);
    const p90 = await run(() =>
      acts.sampleLatency({ quantile: 0.9, service: 'storefront', windowSeconds: 60 }),
    );
    expect(p90.seconds).toBeCloseTo(0.095, 9);
    const none = await run(() => acts.sampleLatency({ quantile: 0.9, service: 'ghost' }));
    expect(none).toMatchObject({ decision: 'insufficient-data', seconds: null });
  });
});

describe('failures', () => {
  it('refuses PromQL that does not parse: 400, UpstreamRejected, not retryable', async () => {
    const f = await failureOf(env().run(() => direct().queryInstant({ query: 'sum((' })));
    expect(f.type).toBe('UpstreamRejected');
    expect(f.nonRetryable).toBe(true);
    expect(f.message).toContain('parse error');
  });

  it('refuses results that are not numbers', async () => {
    const str = await failureOf(env().run(() => direct().queryInstant({ query: '"hello"' })));
    expect(str.type).toBe('InvalidInput');
    const range = await failureOf(
      env().run(() => direct().queryInstant({ query: 'http_requests_total[1m]' })),
    );
    expect(range.type).toBe('InvalidInput');
    expect(range.message).toContain('queryRange');
  });

  it('checks its input', async () => {
    const f = await failureOf(
      env().run(() =>
        direct().queryRange({
          query: 'up',
          start: '2026-01-02T00:00:00Z',
          end: '2026-01-01T00:00:00Z',
          stepSeconds: 0,
        }),
      ),
    );
    expect(f.type).toBe('InvalidInput');
    expect(f.nonRetryable).toBe(true);
  });

  it('refuses bad configuration when built', () => {
    expect(() =>
      createPrometheusActivities({ baseUrl: promUrl, metrics: { serviceLabel: 'not a label' } }),
    ).toThrow(/serviceLabel/);
  });

  it('reports a server that is down as retryable UpstreamUnavailable', async () => {
    const port = await freeLocalPort();
    const f = await failureOf(
      env().run(() =>
        createPrometheusActivities({ baseUrl: `http://127.0.0.1:${port}` }).queryInstant({ query: 'up' }),
      ),
    );
    expect(f.type).toBe('UpstreamUnavailable');
    expect(f.nonRetryable).toBe(false);
  });

  it('passes the bearer token to the proxy and works through it', async () => {
    const res = await run(() => viaProxy().queryInstant({ query: 'vector(7)' }));
    expect(res.samples[0]?.value).toBe(7);
    expect(proxy.requests[0]?.headers.authorization).toBe(`Bearer ${TOKEN}`);
  });

  it.each([
    [{ status: 401, body: 'Unauthorized' }, 'Unauthorized', true, undefined],
    [{ status: 403, body: 'Forbidden' }, 'Unauthorized', true, undefined],
    [{ status: 404, body: '404 page not found' }, 'NotFound', true, undefined],
    [{ status: 429, headers: { 'retry-after': '7' }, body: 'slow down' }, 'RateLimited', false, 7000],
    [
      { status: 503, body: { status: 'error', errorType: 'unavailable', error: 'TSDB not ready' } },
      'UpstreamUnavailable',
      false,
      undefined,
    ],
    [
      { status: 422, body: { status: 'error', errorType: 'execution', error: 'many-to-many matching' } },
      'UpstreamRejected',
      true,
      undefined,
    ],
    [
      {
        status: 200,
        body: {
          status: 'success',
          data: { resultType: 'vector', result: [{ metric: {}, value: [1, 'twelve'] }] },
        },
      },
      'ContractViolation',
      true,
      undefined,
    ],
    [{ status: 200, body: '<html>login</html>' }, 'ContractViolation', true, undefined],
  ])('classifies %j as %s', async (answer, type, nonRetryable, delay) => {
    proxy.scriptNext(answer);
    const f = await failureOf(env().run(() => viaProxy().queryInstant({ query: 'up' })));
    expect(f.type).toBe(type);
    expect(f.nonRetryable).toBe(nonRetryable);
    expect(f.nextRetryDelay).toBe(delay);
  });

  it('classifies a wrong token as Unauthorized without echoing it', async () => {
    const f = await failureOf(env().run(() => viaProxy('wrong-token-123').queryInstant({ query: 'up' })));
    expect(f.type).toBe('Unauthorized');
    expect(serialisedFailure(f)).not.toContain('wrong-token-123');
  });

  it('classifies a dropped connection as retryable UpstreamUnavailable', async () => {
    proxy.scriptNext({ dropConnection: true });
    const f = await failureOf(env().run(() => viaProxy().queryInstant({ query: 'up' })));
    expect(f.type).toBe('UpstreamUnavailable');
  });

  it('follows the activity cancellation while a query hangs', async () => {
    proxy.scriptNext({ hang: true });
    const e = env();
    const pending = e
      .run(() => viaProxy().sampleLatency({ quantile: 0.5 }))
      .then(
        () => 'finished',
        (err: unknown) => err,
      );
    await vi.waitFor(() => expect(proxy.hangingRequests).toBe(1), { timeout: 5_000, interval: 20 });
    e.cancel();
    const err = await pending;
    seen.push(serialisedFailure(err));
    expect(err).toBeInstanceOf(CancelledFailure);
  });
});

describe('credentials', () => {
  it('never lets the bearer token into a result or a failure (checked over everything this file saw)', () => {
    expect(seen.length).toBeGreaterThan(20);
    for (const text of seen) expect(text).not.toContain(TOKEN);
  });
});
