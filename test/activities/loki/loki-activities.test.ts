/**
 * The Loki activities against the Loki fake (src/sandbox/fakes/loki-fake.ts), which follows Loki's documented
 * query_range contract and records every request that breaks it.
 */
import { CancelledFailure } from '@temporalio/common';
import { MockActivityEnvironment } from '@temporalio/testing';
import { DefaultLogger } from '@temporalio/worker';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import {
  type LokiActivitiesOptions,
  createLokiActivities,
} from '../../../src/activities/loki/loki-activities';
import { LokiFake, parseLogql } from '../../../src/sandbox/fakes/loki-fake';
import { serialisedFailure } from '../../../src/sandbox/fakes/scripted-http-server';
import { freeLocalPort } from '../../support/prometheus-server';
import { activityRecorder } from '../activity-recorder';

const TOKEN = 'loki-proxy-token-93be1d2c44';
const TENANT = 'aceh';
const T0 = Date.parse('2026-10-14T10:00:00Z');
const at = (seconds: number) => new Date(T0 + seconds * 1000);
const iso = (seconds: number) => at(seconds).toISOString();

let loki: LokiFake;

beforeAll(async () => {
  loki = await LokiFake.start({ tenant: TENANT, bearerToken: TOKEN });
  const storefront = { app: 'storefront', env: 'production' };
  loki.push(storefront, at(-10), 'ERROR before the window');
  loki.push(storefront, at(10), 'GET / 200');
  loki.push(storefront, at(20), 'level=error msg="payment declined"');
  loki.push(storefront, at(30), 'Error: connection reset');
  loki.push(storefront, at(40), 'GET /cart 200');
  loki.push(storefront, at(60), 'FATAL out of memory');
  loki.push({ app: 'storefront', env: 'production', pod: 'b' }, at(60), 'panic: nil map');
  loki.push(storefront, at(120), 'error at the very end of the window');
  loki.push(storefront, at(300), 'error after the window');
  loki.push({ app: 'checkout', env: 'production' }, at(30), 'ERROR in another app');
});

afterAll(() => loki?.close());
afterEach(() => {
  expect(loki.server.violations).toEqual([]);
  loki.server.reset();
});

const options = (extra: Partial<LokiActivitiesOptions> = {}): LokiActivitiesOptions => ({
  baseUrl: loki.baseUrl,
  tenantId: TENANT,
  bearerToken: TOKEN,
  timeoutMs: 2_000,
  ...extra,
});
const newEnv = () =>
  new MockActivityEnvironment({ activityId: 'loki-1' }, { logger: new DefaultLogger('ERROR') });

const { seen, run, failureOf } = activityRecorder(() => newEnv());

const window = { selector: '{app="storefront", env="production"}', since: iso(0), until: iso(120) };

describe('countErrors (M2)', () => {
  it('counts the error lines of the selected streams in (since, until]', async () => {
    const res = await run(() => createLokiActivities(options()).countErrors(window));
    expect(res.errors).toBe(5);
    expect(res.query).toBe(
      'sum(count_over_time({app="storefront", env="production"} |~ "(?i)(error|fatal|panic)" [2m]))',
    );
    const req = loki.server.requests[0];
    expect(req?.headers['x-scope-orgid']).toBe(TENANT);
    expect(req?.url.searchParams.get('start')).toBe(`${BigInt(at(120).getTime()) * 1_000_000n}`);
    expect(req?.url.searchParams.get('end')).toBe(req?.url.searchParams.get('start'));
    expect(req?.url.searchParams.get('step')).toBe('120');
  });

  it('counts zero when nothing matched', async () => {
    const res = await run(() =>
      createLokiActivities(options()).countErrors({ ...window, selector: '{app="quiet"}' }),
    );
    expect(res.errors).toBe(0);
  });

  it('uses the configured error filter', async () => {
    const res = await run(() =>
      createLokiActivities(options({ errorFilter: '|= "level=error"' })).countErrors(window),
    );
    expect(res.errors).toBe(1);
  });

  it("sees nothing of another tenant's logs", async () => {
    const res = await run(() => createLokiActivities(options({ tenantId: 'other' })).countErrors(window));
    expect(res.errors).toBe(0);
  });
});

describe('errorLines (M2)', () => {
  it('returns every error line newest first when they fit', async () => {
    const res = await run(() => createLokiActivities(options()).errorLines({ ...window, limit: 50 }));
    expect(res.truncated).toBe(false);
    // [since, until): the line at exactly `until` is out, the one at `since`+20 s is in.
    expect(res.lines.map((l) => l.line)).toEqual([
      expect.stringMatching(/^(FATAL out of memory|panic: nil map)$/),
      expect.stringMatching(/^(FATAL out of memory|panic: nil map)$/),
      'Error: connection reset',
      'level=error msg="payment declined"',
    ]);
    expect(res.lines[2]).toMatchObject({
      timestampNs: `${BigInt(at(30).getTime()) * 1_000_000n}`,
      time: iso(30),
      labels: { app: 'storefront', env: 'production' },
    });
  });

  it('pages backwards, heartbeating, without losing or repeating lines that share a timestamp', async () => {
    const env = newEnv();
    const beats: unknown[] = [];
    env.on('heartbeat', (d: unknown) => beats.push(d));
    const res = await run(
      () => createLokiActivities(options({ pageSize: 2 })).errorLines({ ...window, limit: 50 }),
      env,
    );
    expect(res.lines.map((l) => l.line).sort()).toEqual(
      [
        'FATAL out of memory',
        'panic: nil map',
        'Error: connection reset',
        'level=error msg="payment declined"',
      ].sort(),
    );
    expect(res.truncated).toBe(false);
    expect(loki.server.requests.length).toBeGreaterThan(2);
    expect(beats.length).toBe(loki.server.requests.length);
    expect(beats.at(-1)).toEqual({ page: beats.length, lines: 4 });
  });

  it('stops at the limit and says there was more', async () => {
    const res = await run(() =>
      createLokiActivities(options({ pageSize: 2 })).errorLines({ ...window, limit: 3 }),
    );
    expect(res.lines).toHaveLength(3);
    expect(res.truncated).toBe(true);
    const exact = await run(() => createLokiActivities(options()).errorLines({ ...window, limit: 4 }));
    expect(exact.truncated).toBe(false);
  });

  it('cuts long lines', async () => {
    const res = await run(() =>
      createLokiActivities(options({ maxLineLength: 5 })).errorLines({ ...window, limit: 1 }),
    );
    expect(res.lines[0]?.line).toMatch(/^.{5}…$/);
  });

  it('follows the cancellation of the activity while a page hangs', async () => {
    const env = newEnv();
    loki.server.scriptNext({ hang: true });
    const pending = env
      .run(() => createLokiActivities(options()).errorLines({ ...window, limit: 10 }))
      .then(
        () => 'finished',
        (err: unknown) => err,
      );
    await vi.waitFor(() => expect(loki.server.hangingRequests).toBe(1), { timeout: 5_000, interval: 20 });
    env.cancel();
    const err = await pending;
    seen.push(serialisedFailure(err));
    expect(err).toBeInstanceOf(CancelledFailure);
  });
});

describe('failures', () => {
  it('refuses bad input before asking Loki', async () => {
    const acts = createLokiActivities(options());
    const backwards = await failureOf(newEnv().run(() => acts.countErrors({ ...window, since: iso(200) })));
    expect(backwards.type).toBe('InvalidInput');
    const selector = await failureOf(
      newEnv().run(() => acts.errorLines({ ...window, selector: 'app=x', limit: 1 })),
    );
    expect(selector.type).toBe('InvalidInput');
    const tooMany = await failureOf(newEnv().run(() => acts.errorLines({ ...window, limit: 10_000 })));
    expect(tooMany.type).toBe('InvalidInput');
    expect(loki.server.requests).toHaveLength(0);
  });

  it('reports LogQL that Loki refuses (400) as UpstreamRejected', async () => {
    const f = await failureOf(
      newEnv().run(() => createLokiActivities(options({ errorFilter: '|= unquoted' })).countErrors(window)),
    );
    expect(f.type).toBe('UpstreamRejected');
    expect(f.nonRetryable).toBe(true);
    expect(f.message).toContain('parse error');
    expect(loki.server.violations).toHaveLength(1);
    loki.server.reset();
  });

  it('reports a missing tenant and a wrong proxy token as Unauthorized', async () => {
    const noTenant = await failureOf(
      newEnv().run(() => createLokiActivities(options({ tenantId: undefined })).countErrors(window)),
    );
    expect(noTenant.type).toBe('Unauthorized');
    expect(noTenant.message).toContain('no org id');
    const wrong = await failureOf(
      newEnv().run(() =>
        createLokiActivities(options({ bearerToken: 'nope-nope-nope' })).countErrors(window),
      ),
    );
    expect(wrong.type).toBe('Unauthorized');
    expect(loki.server.violations).toHaveLength(2);
    loki.server.reset();
  });

  it.each([
    [{ status: 403, body: 'forbidden' }, 'Unauthorized', true, undefined],
    [{ status: 404, body: '404 page not found' }, 'NotFound', true, undefined],
    [
      { status: 429, headers: { 'retry-after': '12' }, body: 'too many outstanding requests' },
      'RateLimited',
      false,
      12_000,
    ],
    [{ status: 500, body: 'rpc error: code = Unavailable' }, 'UpstreamUnavailable', false, undefined],
    [{ status: 504, body: 'timeout' }, 'UpstreamUnavailable', false, undefined],
    [
      {
        status: 200,
        body: {
          status: 'success',
          data: { resultType: 'matrix', result: [{ metric: {}, values: [[1, 'x']] }] },
        },
      },
      'ContractViolation',
      true,
      undefined,
    ],
    [
      { status: 200, body: { status: 'success', data: { resultType: 'streams', result: [] } } },
      'ContractViolation',
      true,
      undefined,
    ],
  ])('classifies %j as %s', async (answer, type, nonRetryable, delay) => {
    loki.server.scriptNext(answer);
    const f = await failureOf(newEnv().run(() => createLokiActivities(options()).countErrors(window)));
    expect(f.type).toBe(type);
    expect(f.nonRetryable).toBe(nonRetryable);
    expect(f.nextRetryDelay).toBe(delay);
  });

  it('reports a log answer with a broken timestamp as ContractViolation', async () => {
    loki.server.scriptNext({
      status: 200,
      body: {
        status: 'success',
        data: { resultType: 'streams', result: [{ stream: {}, values: [['12:00', 'x']] }] },
      },
    });
    const f = await failureOf(
      newEnv().run(() => createLokiActivities(options()).errorLines({ ...window, limit: 1 })),
    );
    expect(f.type).toBe('ContractViolation');
  });

  it('reports a dropped connection and a Loki that is down as retryable UpstreamUnavailable', async () => {
    loki.server.scriptNext({ dropConnection: true });
    const dropped = await failureOf(newEnv().run(() => createLokiActivities(options()).countErrors(window)));
    expect(dropped.type).toBe('UpstreamUnavailable');
    const port = await freeLocalPort();
    const down = await failureOf(
      newEnv().run(() =>
        createLokiActivities(options({ baseUrl: `http://127.0.0.1:${port}` })).countErrors(window),
      ),
    );
    expect(down.type).toBe('UpstreamUnavailable');
    expect(down.nonRetryable).toBe(false);
  });

  it('refuses a page size that cannot make progress', () => {
    expect(() => createLokiActivities(options({ pageSize: 1 }))).toThrow(/pageSize/);
  });
});

describe('the fake itself', () => {
  it('parses the LogQL the activities send and refuses what Loki refuses', () => {
    expect(parseLogql('sum(count_over_time({a="b"} |~ "(?i)x" [5m]))')).toMatchObject({
      kind: 'metric',
      sum: true,
      rangeNs: 300_000_000_000n,
    });
    expect(parseLogql('{a=~"b.+", c!="d"} |= `raw` != "x"')).toMatchObject({ kind: 'log' });
    expect(() => parseLogql('{a=~".*"}')).toThrow(/empty-compatible/);
    expect(() => parseLogql('{a="b"} |= x')).toThrow(/parse error/);
  });
});

describe('credentials', () => {
  it('never lets the proxy token into a result or a failure (checked over everything this file saw)', () => {
    expect(seen.length).toBeGreaterThan(15);
    for (const text of seen) expect(text).not.toContain(TOKEN);
  });
});
