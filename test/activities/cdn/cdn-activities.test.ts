/**
 * The CDN purge activity against the CDN fake (src/sandbox/fakes/cdn-fake.ts), Cloudflare's purge contract.
 */
import type { Info } from '@temporalio/activity';
import { CancelledFailure } from '@temporalio/common';
import { MockActivityEnvironment } from '@temporalio/testing';
import { DefaultLogger } from '@temporalio/worker';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { type CdnActivitiesOptions, createCdnActivities } from '../../../src/activities/cdn/cdn-activities';
import { CdnFake } from '../../../src/sandbox/fakes/cdn-fake';
import { serialisedFailure } from '../../../src/sandbox/fakes/scripted-http-server';
import { freeLocalPort } from '../../support/prometheus-server';
import { activityRecorder } from '../activity-recorder';

const TOKEN = 'cf-purge-token-Yk3pQ8rT2vW6xZ9a';
const ZONE = '023e105f4ecef8ad9ca31a8372d0c353';

let cdn: CdnFake;

beforeAll(async () => {
  cdn = await CdnFake.start({ token: TOKEN, zones: [ZONE] });
});
afterAll(() => cdn?.close());
afterEach(() => {
  expect(cdn.server.violations).toEqual([]);
  cdn.server.reset();
  cdn.purges.length = 0;
});

const options = (extra: Partial<CdnActivitiesOptions> = {}): CdnActivitiesOptions => ({
  baseUrl: cdn.baseUrl,
  zoneId: ZONE,
  apiToken: TOKEN,
  timeoutMs: 2_000,
  ...extra,
});
const newEnv = (info: Partial<Info> = {}) =>
  new MockActivityEnvironment({ activityId: 'purge-1', ...info }, { logger: new DefaultLogger('ERROR') });

const { seen, run, failureOf } = activityRecorder(() => newEnv());

const assets = (n: number) =>
  Array.from({ length: n }, (_, i) => `https://acehcommerce.id/_next/static/chunk-${i}.js`);

describe('purgeCache (R3)', () => {
  it('purges a list of URLs, once each', async () => {
    const urls = ['https://acehcommerce.id/', 'https://acehcommerce.id/produk', 'https://acehcommerce.id/'];
    const res = await run(() => createCdnActivities(options()).purgeCache({ urls }));
    expect(res).toMatchObject({ mode: 'files', urlCount: 2, requests: 1 });
    expect(cdn.purges).toEqual([
      {
        id: res.purgeIds[0],
        zone: ZONE,
        everything: false,
        files: ['https://acehcommerce.id/', 'https://acehcommerce.id/produk'],
      },
    ]);
    expect(cdn.server.requests[0]?.headers.authorization).toBe(`Bearer ${TOKEN}`);
  });

  it('purges the whole zone', async () => {
    const res = await run(() => createCdnActivities(options()).purgeCache({ everything: true }));
    expect(res).toMatchObject({ mode: 'everything', urlCount: 0, requests: 1 });
    expect(cdn.purges).toEqual([{ id: res.purgeIds[0], zone: ZONE, everything: true, files: [] }]);
    expect(JSON.parse(cdn.server.requests[0]?.body ?? '{}')).toEqual({ purge_everything: true });
  });

  it('sends long lists in batches and heartbeats after each', async () => {
    const env = newEnv();
    const beats: { batchesDone: number }[] = [];
    env.on('heartbeat', (d: { batchesDone: number }) => beats.push(d));
    const res = await run(() => createCdnActivities(options()).purgeCache({ urls: assets(70) }), env);
    expect(res).toMatchObject({ urlCount: 70, requests: 3 });
    expect(cdn.purges.map((p) => p.files.length)).toEqual([30, 30, 10]);
    expect(res.purgeIds).toEqual(cdn.purges.map((p) => p.id));
    expect(beats.map((b) => b.batchesDone)).toEqual([1, 2, 3]);
  });

  it('resumes after the last confirmed batch when retried', async () => {
    const acts = createCdnActivities(options({ maxUrlsPerRequest: 25 }));
    const first = newEnv();
    let last: unknown;
    first.on('heartbeat', (d: unknown) => (last = d));
    // The third batch meets a CDN outage.
    cdn.server.scriptNext(
      { status: 503, body: { success: false, errors: [], messages: [], result: null } },
      () => cdn.purges.length === 2,
    );
    const f = await failureOf(first.run(() => acts.purgeCache({ urls: assets(60) })));
    expect(f.type).toBe('UpstreamUnavailable');
    expect(cdn.purges).toHaveLength(2);
    const retry = newEnv({ attempt: 2, heartbeatDetails: last });
    const res = await run(() => acts.purgeCache({ urls: assets(60) }), retry);
    expect(res.requests).toBe(1);
    expect(cdn.purges.map((p) => p.files.length)).toEqual([25, 25, 10]);
    expect(res.purgeIds).toEqual(cdn.purges.map((p) => p.id));
  });

  it('starts over when the heartbeat belongs to another URL list', async () => {
    const stale = { fingerprint: 'something-else', batchesDone: 5, purgeIds: ['x'] };
    const res = await run(
      () => createCdnActivities(options()).purgeCache({ urls: assets(3) }),
      newEnv({ attempt: 2, heartbeatDetails: stale }),
    );
    expect(res).toMatchObject({ requests: 1, urlCount: 3 });
    expect(res.purgeIds).not.toContain('x');
  });

  it('follows the cancellation of the activity between batches', async () => {
    const env = newEnv();
    const beats: unknown[] = [];
    env.on('heartbeat', (d: unknown) => beats.push(d));
    cdn.server.scriptNext({ hang: true }, () => cdn.purges.length === 1);
    const pending = env
      .run(() => createCdnActivities(options({ maxUrlsPerRequest: 10 })).purgeCache({ urls: assets(30) }))
      .then(
        () => 'finished',
        (err: unknown) => err,
      );
    await vi.waitFor(() => expect(cdn.server.hangingRequests).toBe(1), { timeout: 5_000, interval: 20 });
    expect(beats).toHaveLength(1);
    env.cancel();
    const err = await pending;
    seen.push(serialisedFailure(err));
    expect(err).toBeInstanceOf(CancelledFailure);
    expect(cdn.purges).toHaveLength(1);
  });
});

describe('failures', () => {
  it.each([
    [{}],
    [{ urls: ['https://a.example/'], everything: true as const }],
    [{ urls: [] }],
    [{ urls: ['ftp://acehcommerce.id/file'] }],
  ])('refuses %j without calling the CDN', async (input) => {
    const f = await failureOf(newEnv().run(() => createCdnActivities(options()).purgeCache(input)));
    expect(f.type).toBe('InvalidInput');
    expect(f.nonRetryable).toBe(true);
    expect(cdn.server.requests).toHaveLength(0);
  });

  it('reports a token without permission as Unauthorized, without echoing it', async () => {
    const f = await failureOf(
      newEnv().run(() =>
        createCdnActivities(options({ apiToken: 'cf-wrong-token-000000' })).purgeCache({ everything: true }),
      ),
    );
    expect(f.type).toBe('Unauthorized');
    expect(f.message).toContain('Authentication error');
    expect(serialisedFailure(f)).not.toContain('cf-wrong-token-000000');
    expect(cdn.server.violations).toHaveLength(1);
    cdn.server.reset();
  });

  it('reports an unknown zone as NotFound', async () => {
    const f = await failureOf(
      newEnv().run(() =>
        createCdnActivities(options({ zoneId: 'ffffffffffffffffffffffffffffffff' })).purgeCache({
          everything: true,
        }),
      ),
    );
    expect(f.type).toBe('NotFound');
    expect(cdn.server.violations).toHaveLength(1);
    cdn.server.reset();
  });

  it('reports a body the CDN refuses (more URLs per request than allowed) as UpstreamRejected', async () => {
    const strict = await CdnFake.start({ token: TOKEN, zones: [ZONE], maxItems: 5 });
    try {
      const f = await failureOf(
        newEnv().run(() =>
          createCdnActivities(options({ baseUrl: strict.baseUrl, maxUrlsPerRequest: 10 })).purgeCache({
            urls: assets(8),
          }),
        ),
      );
      expect(f.type).toBe('UpstreamRejected');
      expect(f.nonRetryable).toBe(true);
      expect(f.message).toContain('More than 5 files');
    } finally {
      await strict.close();
    }
  });

  it.each([
    [CdnFake.error(401, 10001, 'Unable to authenticate request'), 'Unauthorized', true, undefined],
    [
      CdnFake.error(429, 971, 'Please wait and consider throttling your request speed', {
        'retry-after': '60',
      }),
      'RateLimited',
      false,
      60_000,
    ],
    [CdnFake.error(500, 10000, 'Internal error'), 'UpstreamUnavailable', false, undefined],
    [{ status: 502, body: '<html>Bad gateway</html>' }, 'UpstreamUnavailable', false, undefined],
    [
      {
        status: 200,
        body: {
          success: false,
          errors: [{ code: 1134, message: 'Purge quota exceeded' }],
          messages: [],
          result: null,
        },
      },
      'UpstreamRejected',
      true,
      undefined,
    ],
    [{ status: 200, body: { id: 'not-an-envelope' } }, 'ContractViolation', true, undefined],
  ])('classifies %j as %s', async (answer, type, nonRetryable, delay) => {
    cdn.server.scriptNext(answer);
    const f = await failureOf(
      newEnv().run(() => createCdnActivities(options()).purgeCache({ everything: true })),
    );
    expect(f.type).toBe(type);
    expect(f.nonRetryable).toBe(nonRetryable);
    expect(f.nextRetryDelay).toBe(delay);
  });

  it('reports the CDN being unreachable as retryable UpstreamUnavailable', async () => {
    cdn.server.scriptNext({ dropConnection: true });
    const dropped = await failureOf(
      newEnv().run(() => createCdnActivities(options()).purgeCache({ everything: true })),
    );
    expect(dropped.type).toBe('UpstreamUnavailable');
    const port = await freeLocalPort();
    const down = await failureOf(
      newEnv().run(() =>
        createCdnActivities(options({ baseUrl: `http://127.0.0.1:${port}` })).purgeCache({
          everything: true,
        }),
      ),
    );
    expect(down.type).toBe('UpstreamUnavailable');
    expect(down.nonRetryable).toBe(false);
  });

  it('refuses bad configuration when built', () => {
    expect(() => createCdnActivities(options({ zoneId: '../other' }))).toThrow(/zone id/);
    expect(() => createCdnActivities(options({ maxUrlsPerRequest: 500 }))).toThrow(/maxUrlsPerRequest/);
  });
});

describe('credentials', () => {
  it('never lets the API token into a result or a failure (checked over everything this file saw)', () => {
    expect(seen.length).toBeGreaterThan(15);
    for (const text of seen) expect(text).not.toContain(TOKEN);
  });
});
