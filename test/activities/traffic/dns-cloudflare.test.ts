/**
 * The Cloudflare DNS traffic provider against the spec-faithful fake (src/sandbox/fakes/cloudflare-dns-fake.ts)
 * through the shared HttpClient: success, every failure class, idempotency, exact restore.
 */
import { CancelledFailure } from '@temporalio/common';
import { MockActivityEnvironment } from '@temporalio/testing';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import {
  createCloudflareDnsTrafficActivities,
  type CloudflareDnsTrafficOptions,
} from '../../../src/activities/traffic/dns-cloudflare';
import { CloudflareDnsFake } from '../../../src/sandbox/fakes/cloudflare-dns-fake';
import { expectFailure, quietLogger, runActivity } from './traffic-test-support';

const ZONE = '023e105f4ecef8ad9ca31a8372d0c353';
const TOKEN = 'cf-test-token-9f8e7d6c5b4a';
const BLUE = '203.0.113.10';
const GREEN = '203.0.113.20';

let fake: CloudflareDnsFake;

beforeEach(async () => {
  fake = await CloudflareDnsFake.start({
    token: TOKEN,
    zones: {
      [ZONE]: {
        name: 'acehcommerce.id',
        records: [
          { name: 'acehcommerce.id', type: 'A', content: BLUE, proxied: true, ttl: 1, comment: 'production' },
          { name: 'api.acehcommerce.id', type: 'A', content: '203.0.113.30', proxied: false, ttl: 300 },
          { name: 'multi.acehcommerce.id', type: 'A', content: BLUE, proxied: false, ttl: 60 },
          { name: 'multi.acehcommerce.id', type: 'A', content: GREEN, proxied: false, ttl: 60 },
          { name: 'acehcommerce.id', type: 'TXT', content: 'v=spf1 -all', proxiable: false },
        ],
      },
    },
  });
});

afterEach(async () => {
  await fake.close();
});

const provider = (overrides: Partial<CloudflareDnsTrafficOptions> = {}) =>
  createCloudflareDnsTrafficActivities({
    token: TOKEN,
    zoneId: ZONE,
    baseUrl: fake.baseUrl,
    services: {
      web: { record: 'acehcommerce.id', targets: { blue: BLUE, green: GREEN } },
      multi: { record: 'multi.acehcommerce.id', targets: { blue: BLUE, green: GREEN } },
      absent: { record: 'staging.acehcommerce.id', targets: { blue: BLUE, green: GREEN } },
      bad: { record: 'api.acehcommerce.id', targets: { blue: '203.0.113.30', green: 'not-an-ip' } },
      blueOnly: { record: 'acehcommerce.id', targets: { blue: BLUE } },
    },
    ...overrides,
  });

const apex = () => fake.records(ZONE).find((r) => r.name === 'acehcommerce.id' && r.type === 'A');

describe('Cloudflare DNS traffic provider', () => {
  it('reads which colour the record points at', async () => {
    const state = await runActivity(provider().getTrafficState, { service: 'web' });
    expect(state).toMatchObject({
      service: 'web',
      active: 'blue',
      weights: [
        { target: 'blue', percent: 100 },
        { target: 'green', percent: 0 },
      ],
      mirrors: [],
      snapshot: { provider: 'dns', recordName: 'acehcommerce.id', content: BLUE },
    });
    expect(fake.requests[0]).toMatchObject({
      method: 'GET',
      path: `/client/v4/zones/${ZONE}/dns_records`,
      query: { name: 'acehcommerce.id', type: 'A', per_page: '100' },
      authorization: `Bearer ${TOKEN}`,
    });
  });

  it('switches to green with one PATCH of the content, keeping proxied, ttl and comment', async () => {
    const before = apex();
    const result = await runActivity(provider().switchTraffic, { service: 'web', to: 'green' });
    expect(result.changed).toBe(true);
    expect(result.previous.active).toBe('blue');
    expect(result.current.active).toBe('green');
    const after = apex();
    expect(after).toMatchObject({
      id: before?.id,
      content: GREEN,
      proxied: true,
      ttl: 1,
      comment: 'production',
    });
    const patches = fake.requests.filter((r) => r.method === 'PATCH');
    expect(patches).toEqual([
      expect.objectContaining({
        path: `/client/v4/zones/${ZONE}/dns_records/${before?.id}`,
        body: { content: GREEN },
      }),
    ]);
  });

  it('is a no-op when the record already points at the colour, and restores the previous address', async () => {
    const p = provider();
    const first = await runActivity(p.switchTraffic, { service: 'web', to: 'green' });
    const again = await runActivity(p.switchTraffic, { service: 'web', to: 'green' });
    expect(again.changed).toBe(false);
    expect(again.previous).toEqual(first.current);
    expect(fake.requests.filter((r) => r.method === 'PATCH')).toHaveLength(1);

    const restored = await runActivity(p.restoreTrafficState, { service: 'web', state: first.previous });
    expect(restored.changed).toBe(true);
    expect(restored.current).toEqual(first.previous);
    expect(apex()).toMatchObject({ content: BLUE, proxied: true, ttl: 1 });
    const restoredAgain = await runActivity(p.restoreTrafficState, { service: 'web', state: first.previous });
    expect(restoredAgain.changed).toBe(false);
  });

  it('shows an address that is neither colour as its own target, and restores it exactly', async () => {
    const p = createCloudflareDnsTrafficActivities({
      token: TOKEN,
      zoneId: ZONE,
      baseUrl: fake.baseUrl,
      services: { api: { record: 'api.acehcommerce.id', targets: { blue: BLUE, green: GREEN } } },
    });
    const switched = await runActivity(p.switchTraffic, { service: 'api', to: 'blue' });
    expect(switched.previous.active).toBeNull();
    expect(switched.previous.weights).toEqual([
      { target: 'blue', percent: 0 },
      { target: 'green', percent: 0 },
      { target: '203.0.113.30', percent: 100 },
    ]);
    await runActivity(p.restoreTrafficState, { service: 'api', state: switched.previous });
    expect(fake.records(ZONE).find((r) => r.name === 'api.acehcommerce.id')).toMatchObject({
      content: '203.0.113.30',
      ttl: 300,
      proxied: false,
    });
  });

  it('cannot split or mirror (PolicyViolation); stopping mirroring is a no-op', async () => {
    const p = provider();
    await expectFailure(
      runActivity(p.setCanaryWeights, { service: 'web', stable: 'blue', canary: 'green', canaryPercent: 10 }),
      'PolicyViolation',
      true,
    );
    await expectFailure(
      runActivity(p.mirrorTraffic, { service: 'web', to: 'green', percent: 10 }),
      'PolicyViolation',
      true,
    );
    const stopped = await runActivity(p.stopMirroring, { service: 'web' });
    expect(stopped.changed).toBe(false);
    expect(fake.requests.filter((r) => r.method === 'PATCH')).toHaveLength(0);
  });

  it('needs exactly one record: none is NotFound, several is PolicyViolation', async () => {
    const p = provider();
    await expectFailure(runActivity(p.switchTraffic, { service: 'absent', to: 'green' }), 'NotFound', true);
    const f = await expectFailure(
      runActivity(p.switchTraffic, { service: 'multi', to: 'green' }),
      'PolicyViolation',
      true,
    );
    expect(f.message).toContain('2 A records');
  });

  it('classifies a wrong token as Unauthorized without echoing any token', async () => {
    const wrong = 'cf-wrong-token-1a2b3c4d';
    const f = await expectFailure(
      runActivity(provider({ token: wrong }).switchTraffic, { service: 'web', to: 'green' }),
      'Unauthorized',
      true,
    );
    expect(f.message).not.toContain(wrong);
    expect(JSON.stringify(f.details)).not.toContain(wrong);
    expect(f.message).not.toContain(TOKEN);
  });

  it('classifies 429 as RateLimited honouring Retry-After', async () => {
    fake.failNext({
      status: 429,
      retryAfter: '7',
      errors: [{ code: 971, message: 'Please wait and consider throttling your request speed' }],
    });
    const f = await expectFailure(
      runActivity(provider().switchTraffic, { service: 'web', to: 'green' }),
      'RateLimited',
      false,
    );
    expect(f.nextRetryDelay).toBe(7000);
    expect(apex()?.content).toBe(BLUE);
  });

  it('classifies 5xx and an unreachable API as UpstreamUnavailable (retryable)', async () => {
    fake.failNext({ status: 502 });
    await expectFailure(
      runActivity(provider().getTrafficState, { service: 'web' }),
      'UpstreamUnavailable',
      false,
    );
    const url = fake.baseUrl;
    await fake.close();
    fake = await CloudflareDnsFake.start({ token: TOKEN, zones: {} });
    await expectFailure(
      runActivity(provider({ baseUrl: url }).getTrafficState, { service: 'web' }),
      'UpstreamUnavailable',
      false,
    );
  });

  it('classifies a refused PATCH (invalid content) as UpstreamRejected and changes nothing', async () => {
    const f = await expectFailure(
      runActivity(provider().switchTraffic, { service: 'bad', to: 'green' }),
      'UpstreamRejected',
      true,
    );
    expect(f.message).toContain('9005');
    expect(fake.records(ZONE).find((r) => r.name === 'api.acehcommerce.id')?.content).toBe('203.0.113.30');
  });

  it('classifies success:false inside a 2xx answer by its Cloudflare error code', async () => {
    fake.failNext({ status: 200, errors: [{ code: 1004, message: 'DNS Validation Error' }] });
    const rejected = await expectFailure(
      runActivity(provider().switchTraffic, { service: 'web', to: 'green' }),
      'UpstreamRejected',
      true,
    );
    expect(rejected.message).toContain('1004 DNS Validation Error');
    fake.failNext({ status: 200, errors: [{ code: 10000, message: 'Authentication error' }] });
    await expectFailure(runActivity(provider().getTrafficState, { service: 'web' }), 'Unauthorized', true);
    fake.failNext({ status: 200, errors: [{ code: 81044, message: 'Record does not exist.' }] });
    await expectFailure(runActivity(provider().getTrafficState, { service: 'web' }), 'NotFound', true);
    fake.failNext({ status: 200, errors: [{ code: 971, message: 'Please wait' }] });
    await expectFailure(runActivity(provider().getTrafficState, { service: 'web' }), 'RateLimited', false);
  });

  it('classifies an unknown zone as NotFound', async () => {
    await expectFailure(
      runActivity(provider({ zoneId: 'ffffffffffffffffffffffffffffffff' }).getTrafficState, {
        service: 'web',
      }),
      'NotFound',
      true,
    );
  });

  it('classifies answers that break the envelope as ContractViolation', async () => {
    fake.failNext({ status: 200, rawBody: '{"result": []}' });
    await expectFailure(
      runActivity(provider().getTrafficState, { service: 'web' }),
      'ContractViolation',
      true,
    );
    fake.failNext({
      status: 200,
      rawBody: JSON.stringify({
        success: true,
        errors: [],
        messages: [],
        result: [{ id: 'x', name: 'acehcommerce.id' }],
      }),
    });
    await expectFailure(
      runActivity(provider().getTrafficState, { service: 'web' }),
      'ContractViolation',
      true,
    );
  });

  it('rejects an unconfigured service or colour and malformed input as InvalidInput', async () => {
    const p = provider();
    await expectFailure(runActivity(p.switchTraffic, { service: 'shop', to: 'green' }), 'InvalidInput', true);
    await expectFailure(
      runActivity(p.switchTraffic, { service: 'blueOnly', to: 'green' }),
      'InvalidInput',
      true,
    );
    await expectFailure(runActivity(p.getTrafficState, { service: '' }), 'InvalidInput', true);
    const state = await runActivity(p.getTrafficState, { service: 'web' });
    await expectFailure(
      runActivity(p.restoreTrafficState, { service: 'multi', state: { ...state, service: 'multi' } }),
      'InvalidInput',
      true,
    );
    expect(fake.requests.filter((r) => r.method === 'PATCH')).toHaveLength(0);
  });

  it('stops waiting for the API when the activity is cancelled', async () => {
    fake.hang();
    const env = new MockActivityEnvironment(undefined, { logger: quietLogger });
    const pending = env.run(provider().switchTraffic, { service: 'web', to: 'green' } as const);
    await vi.waitFor(() => expect(fake.requests.length).toBeGreaterThan(0));
    env.cancel();
    await expect(pending).rejects.toBeInstanceOf(CancelledFailure);
  });
});

describe('the Cloudflare DNS fake holds requests to the contract', () => {
  const send = (path: string, init: RequestInit = {}) =>
    fetch(`${fake.baseUrl}${path}`, {
      ...init,
      headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
    });

  it('refuses unknown query parameters, unknown body fields and ill-typed values', async () => {
    const list = await send(`/zones/${ZONE}/dns_records?name=acehcommerce.id&colour=blue`);
    expect(list.status).toBe(400);
    const id = apex()?.id ?? '';
    const unknownField = await send(`/zones/${ZONE}/dns_records/${id}`, {
      method: 'PATCH',
      body: JSON.stringify({ content: GREEN, weight: 5 }),
    });
    expect(unknownField.status).toBe(400);
    const badTtl = await send(`/zones/${ZONE}/dns_records/${id}`, {
      method: 'PATCH',
      body: JSON.stringify({ ttl: 5 }),
    });
    expect(badTtl.status).toBe(400);
    expect(await badTtl.json()).toMatchObject({ success: false, errors: [{ code: 1004 }], result: null });
    expect(apex()?.content).toBe(BLUE);
  });
});
