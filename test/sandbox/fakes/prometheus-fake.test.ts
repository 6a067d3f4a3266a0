/**
 * The Prometheus fake: its traffic model, the query shapes it understands, and its contract checks, driven
 * through the real Prometheus activities so that a change in the queries they build shows here.
 */
import { ApplicationFailure } from '@temporalio/common';
import { MockActivityEnvironment } from '@temporalio/testing';
import { DefaultLogger } from '@temporalio/worker';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createPrometheusActivities } from '../../../src/activities/prometheus/prometheus-activities';
import {
  PrometheusFake,
  parseSupportedQuery,
  type TrafficModel,
} from '../../../src/sandbox/fakes/prometheus-fake';

let fake: PrometheusFake;

beforeAll(async () => {
  fake = await PrometheusFake.start({ services: ['storefront', 'api-gateway'] });
});

afterAll(async () => {
  await fake?.close();
});

afterEach(() => {
  // Each test leaves the fake as it found it; a violation fails the test that caused it.
  const left = [...fake.violations];
  fake.clearTraffic();
  fake.queries.length = 0;
  fake.server.reset();
  expect(left).toEqual([]);
});

const activities = () => createPrometheusActivities({ baseUrl: fake.baseUrl, timeoutMs: 2_000 });

function run<R>(fn: () => Promise<R>): Promise<R> {
  const env = new MockActivityEnvironment(
    { activityId: 'prom-fake' },
    { logger: new DefaultLogger('ERROR') },
  );
  return env.run<[], R, () => Promise<R>>(fn);
}

async function failureOf(promise: Promise<unknown>): Promise<ApplicationFailure> {
  const outcome = await promise.then(
    (value) => ({ value }),
    (err: unknown) => ({ err }),
  );
  if (!('err' in outcome)) throw new Error(`expected a failure, got ${JSON.stringify(outcome.value)}`);
  if (!(outcome.err instanceof ApplicationFailure)) throw outcome.err;
  return outcome.err;
}

describe('the default model: a healthy service', () => {
  it('answers sampleErrorRate with 1000 requests a minute and 0.2 % errors', async () => {
    const sample = await run(() =>
      activities().sampleErrorRate({ service: 'storefront', windowSeconds: 60, minRequests: 20 }),
    );
    expect(sample).toMatchObject({ requests: 1000, decision: 'ok' });
    expect(sample.errorRate).toBeCloseTo(0.002, 12);
    expect(fake.queries.map((q) => q.query).sort()).toEqual([sample.query, sample.requestsQuery].sort());
  });

  it('answers sampleLatency with a p95 of 120 ms and other quantiles from the same spread', async () => {
    const p95 = await run(() => activities().sampleLatency({ quantile: 0.95, service: 'storefront' }));
    expect(p95).toMatchObject({ seconds: 0.12, raw: '0.12', decision: 'ok' });
    const median = await run(() => activities().sampleLatency({ quantile: 0.5, service: 'storefront' }));
    expect(median.seconds).toBeCloseTo((0.12 * 0.5) / 0.95, 12);
  });
});

describe('scripted traffic', () => {
  it('evaluates the model at the time asked for, with the window asked for, and records it', async () => {
    const calls: { atMs: number; windowSeconds: number }[] = [];
    const model: TrafficModel = (atMs, windowSeconds) => {
      calls.push({ atMs, windowSeconds });
      const requests = 600;
      return { requests, errors: atMs >= Date.parse('2026-03-01T10:05:00Z') ? 60 : 0 };
    };
    fake.setTraffic('api-gateway', model);
    const acts = activities();
    const before = await run(() =>
      acts.sampleErrorRate({
        service: 'api-gateway',
        windowSeconds: 300,
        minRequests: 1,
        time: '2026-03-01T10:00:00.000Z',
      }),
    );
    const after = await run(() =>
      acts.sampleErrorRate({
        service: 'api-gateway',
        windowSeconds: 300,
        minRequests: 1,
        time: '2026-03-01T10:06:30.250Z',
      }),
    );
    expect(before).toMatchObject({ errorRate: 0, requests: 600, decision: 'ok' });
    expect(after).toMatchObject({ errorRate: 0.1, requests: 600, decision: 'ok' });
    expect(new Set(calls.map((c) => c.windowSeconds))).toEqual(new Set([300]));
    expect(fake.queries.map((q) => q.atMs)).toEqual([
      Date.parse('2026-03-01T10:00:00.000Z'),
      Date.parse('2026-03-01T10:00:00.000Z'),
      Date.parse('2026-03-01T10:06:30.250Z'),
      Date.parse('2026-03-01T10:06:30.250Z'),
    ]);
    // Other services keep the default model.
    const other = await run(() =>
      acts.sampleErrorRate({ service: 'storefront', windowSeconds: 60, minRequests: 1 }),
    );
    expect(other.requests).toBe(1000);
  });

  it('passes the matchers besides service to the model', async () => {
    const seen: Record<string, string>[] = [];
    fake.setTraffic('storefront', (_at, _window, labels) => {
      seen.push(labels);
      return labels['color'] === 'green' ? { requests: 100, errors: 30 } : { requests: 100, errors: 0 };
    });
    const green = await run(() =>
      activities().sampleErrorRate({
        service: 'storefront',
        labels: { color: 'green' },
        windowSeconds: 60,
        minRequests: 1,
      }),
    );
    expect(green.errorRate).toBeCloseTo(0.3, 12);
    expect(seen).toContainEqual({ color: 'green' });
  });

  it("'empty' means no series: both samples say insufficient-data", async () => {
    fake.setTraffic('storefront', 'empty');
    const rate = await run(() =>
      activities().sampleErrorRate({ service: 'storefront', windowSeconds: 60, minRequests: 0 }),
    );
    expect(rate).toMatchObject({ errorRate: null, requests: 0, decision: 'insufficient-data' });
    const latency = await run(() => activities().sampleLatency({ quantile: 0.95, service: 'storefront' }));
    expect(latency).toMatchObject({ seconds: null, raw: null, decision: 'insufficient-data' });
  });

  it('a window without requests has a NaN error rate and a NaN latency, as in PromQL', async () => {
    fake.setTraffic('storefront', { requests: 0, errors: 0, p95Seconds: 0.2 });
    const rate = await run(() =>
      activities().sampleErrorRate({ service: 'storefront', windowSeconds: 60, minRequests: 0 }),
    );
    expect(rate).toMatchObject({ errorRate: null, requests: 0, decision: 'insufficient-data' });
    const latency = await run(() => activities().sampleLatency({ quantile: 0.95, service: 'storefront' }));
    expect(latency).toMatchObject({ seconds: null, raw: 'NaN', decision: 'insufficient-data' });
  });

  it("'down' answers 503 unavailable: a retryable UpstreamUnavailable", async () => {
    fake.setTraffic('storefront', 'down');
    const err = await failureOf(
      run(() => activities().sampleErrorRate({ service: 'storefront', windowSeconds: 60, minRequests: 1 })),
    );
    expect(err.type).toBe('UpstreamUnavailable');
    expect(err.nonRetryable).toBe(false);
  });

  it('without a service matcher, combines the known services weighted by their requests', async () => {
    fake.setTraffic('storefront', { requests: 300, errors: 0, p95Seconds: 0.1 });
    fake.setTraffic('api-gateway', { requests: 100, errors: 0, p95Seconds: 0.5 });
    const all = await run(() => activities().sampleLatency({ quantile: 0.95 }));
    expect(all.seconds).toBeCloseTo((300 * 0.1 + 100 * 0.5) / 400, 12);
  });

  it('answers a range query step by step', async () => {
    fake.setTraffic('storefront', (atMs) => ({ requests: (atMs / 1000) % 1000, errors: 0 }));
    const res = await run(() =>
      activities().queryRange({
        query: 'sum(increase(http_requests_total{service="storefront"}[60s]))',
        start: '2026-03-01T10:00:00.000Z',
        end: '2026-03-01T10:01:00.000Z',
        stepSeconds: 30,
      }),
    );
    const t0 = Date.parse('2026-03-01T10:00:00.000Z');
    expect(res.series).toHaveLength(1);
    expect(res.series[0]?.samples.map((s) => [s.timestampMs, s.value])).toEqual([
      [t0, (t0 / 1000) % 1000],
      [t0 + 30_000, (t0 / 1000 + 30) % 1000],
      [t0 + 60_000, (t0 / 1000 + 60) % 1000],
    ]);
    expect(fake.queries[0]).toMatchObject({
      endpoint: 'query_range',
      range: { startMs: t0, stepSeconds: 30 },
    });
  });
});

describe('queries it does not understand, and the contract', () => {
  it('answers other PromQL with 400 bad_data: a non-retryable UpstreamRejected', async () => {
    const err = await failureOf(run(() => activities().queryInstant({ query: 'up' })));
    expect(err.type).toBe('UpstreamRejected');
    const res = await fetch(`${fake.baseUrl}/api/v1/query?query=${encodeURIComponent('rate(x[5m])')}`);
    expect(res.status).toBe(400);
    expect(await res.json()).toMatchObject({ status: 'error', errorType: 'bad_data' });
  });

  it('refuses a malformed time with bad_data', async () => {
    const q = encodeURIComponent('sum(increase(http_requests_total{service="storefront"}[60s]))');
    const res = await fetch(`${fake.baseUrl}/api/v1/query?query=${q}&time=yesterday`);
    expect(res.status).toBe(400);
    const body = (await res.json()) as { errorType: string; error: string };
    expect(body.errorType).toBe('bad_data');
    expect(body.error).toContain('"time"');
    // Neither RFC 3339 nor Unix seconds: the request breaks the description too.
    expect(fake.violations).toContain(
      'GET /api/v1/query query parameter time: (root) must match exactly one schema in oneOf',
    );
    fake.violations.length = 0;
  });

  it('takes POSTed form bodies, RFC 3339 times and duration steps', async () => {
    const query = 'sum(increase(http_requests_total{service="storefront"}[60s]))';
    const instant = await fetch(`${fake.baseUrl}/api/v1/query`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ query, time: '2026-03-01T10:00:00Z' }).toString(),
    });
    expect(await instant.json()).toEqual({
      status: 'success',
      data: { resultType: 'vector', result: [{ metric: {}, value: [1772359200, '1000'] }] },
    });
    const range = await fetch(`${fake.baseUrl}/api/v1/query_range`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({
        query,
        start: '2026-03-01T10:00:00Z',
        end: '2026-03-01T10:00:30Z',
        step: '15s',
      }).toString(),
    });
    const body = (await range.json()) as { data: { result: { values: unknown[] }[] } };
    expect(body.data.result[0]?.values).toHaveLength(3);
    // Prometheus durations (not ISO 8601 ones) in the query string, as the description means them.
    const viaGet = await fetch(
      `${fake.baseUrl}/api/v1/query_range?${new URLSearchParams({ query, start: '1772359200', end: '1772359260.5', step: '1m' }).toString()}`,
    );
    const got = (await viaGet.json()) as { data: { result: { values: unknown[] }[] } };
    expect(got.data.result[0]?.values).toEqual([
      [1772359200, '1000'],
      [1772359260, '1000'],
    ]);
  });

  it('records requests that break the OpenAPI description as violations', async () => {
    await fetch(`${fake.baseUrl}/api/v1/query?time=1`);
    await fetch(`${fake.baseUrl}/api/v1/query?query=up&bogus=1`);
    await fetch(`${fake.baseUrl}/api/v1/query`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: 'query=up&limit=many',
    });
    await fetch(`${fake.baseUrl}/api/v1/labels`);
    expect(fake.violations).toEqual([
      'GET /api/v1/query: required query parameter query missing',
      'GET /api/v1/query: query parameter bogus is not in the document',
      'POST /api/v1/query body: /limit must be integer',
      'GET /api/v1/labels: the fake serves only /api/v1/query and /api/v1/query_range',
    ]);
    fake.violations.length = 0;
  });

  it('knows exactly the shapes the activities build', () => {
    expect(
      parseSupportedQuery(
        '(sum(increase(http_requests_total{service="a\\"b",color="green",status=~"5.."}[60s])) or vector(0)) / sum(increase(http_requests_total{service="a\\"b",color="green"}[60s]))',
      ),
    ).toEqual({
      kind: 'error-rate',
      selector: { service: 'a"b', labels: { color: 'green' } },
      windowSeconds: 60,
    });
    // The two halves must be about the same series and window.
    expect(() =>
      parseSupportedQuery(
        '(sum(increase(http_requests_total{service="a",status=~"5.."}[60s])) or vector(0)) / sum(increase(http_requests_total{service="b"}[60s]))',
      ),
    ).toThrow(/parse error/);
    expect(() => parseSupportedQuery('sum(increase(http_requests_total{color="x"}[60s]))')).toThrow(
      /parse error/,
    );
  });

  it('asks for the bearer token when configured', async () => {
    const guarded = await PrometheusFake.start({ bearerToken: 'prom-token-7f3a' });
    try {
      const refused = await failureOf(
        run(() =>
          createPrometheusActivities({ baseUrl: guarded.baseUrl }).sampleErrorRate({
            service: 'storefront',
            windowSeconds: 60,
            minRequests: 1,
          }),
        ),
      );
      expect(refused.type).toBe('Unauthorized');
      const ok = await run(() =>
        createPrometheusActivities({
          baseUrl: guarded.baseUrl,
          bearerToken: 'prom-token-7f3a',
        }).sampleErrorRate({ service: 'storefront', windowSeconds: 60, minRequests: 1 }),
      );
      expect(ok.requests).toBe(1000);
      expect(guarded.violations).toEqual([]);
    } finally {
      await guarded.close();
    }
  });
});
