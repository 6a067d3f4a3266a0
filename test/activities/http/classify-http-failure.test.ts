import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { ApplicationFailure } from '@temporalio/common';
import { z } from 'zod';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { classifyHttpStatus, parseRetryAfter } from '../../../src/activities/http/classify-http-failure';
import { HttpClient } from '../../../src/activities/http/http-client';

const ctx = { system: 'Coolify', operation: 'POST /api/v1/deploy' };

describe('classifyHttpStatus', () => {
  it.each([
    [400, 'UpstreamRejected', true],
    [401, 'Unauthorized', true],
    [403, 'Unauthorized', true],
    [404, 'NotFound', true],
    [409, 'UpstreamRejected', true],
    [410, 'NotFound', true],
    [422, 'UpstreamRejected', true],
    [408, 'UpstreamUnavailable', false],
    [429, 'RateLimited', false],
    [500, 'UpstreamUnavailable', false],
    [502, 'UpstreamUnavailable', false],
    [503, 'UpstreamUnavailable', false],
  ])('%i -> %s (nonRetryable %s)', (status, type, nonRetryable) => {
    const f = classifyHttpStatus(status, ctx);
    expect(f.type).toBe(type);
    expect(f.nonRetryable).toBe(nonRetryable);
    expect(f.message).toContain('Coolify POST /api/v1/deploy');
  });

  it('honours Retry-After on 429 and 503', () => {
    expect(classifyHttpStatus(429, ctx, { retryAfterMs: 7000 }).nextRetryDelay).toBe(7000);
    expect(classifyHttpStatus(503, ctx, { retryAfterMs: 2000 }).nextRetryDelay).toBe(2000);
  });
});

describe('parseRetryAfter', () => {
  it.each([
    ['120', 120_000],
    ['0', 0],
    ['Wed, 21 Oct 2015 07:28:10 GMT', 10_000],
    ['soon', undefined],
    ['', undefined],
  ])('%j -> %j', (value, expected) => {
    expect(parseRetryAfter(value, Date.parse('Wed, 21 Oct 2015 07:28:00 GMT'))).toBe(expected);
  });
});

describe('HttpClient against a real HTTP server', () => {
  let server: http.Server;
  let baseUrl: string;
  const seen: { authorization?: string; path?: string }[] = [];

  beforeAll(async () => {
    server = http.createServer((req, res) => {
      seen.push({ authorization: req.headers.authorization, path: req.url });
      const url = new URL(req.url ?? '/', 'http://x');
      const status = Number(url.searchParams.get('status') ?? 200);
      if (url.pathname === '/slow') return; // never answers
      if (status === 429) res.setHeader('retry-after', '3');
      res.writeHead(status, { 'content-type': 'application/json' });
      if (url.pathname === '/bad-json') return res.end('{nope');
      if (url.pathname === '/wrong-shape') return res.end(JSON.stringify({ uuid: 42 }));
      res.end(
        JSON.stringify(status < 300 ? { uuid: 'app-1' } : { message: 'token lacks the deploy ability' }),
      );
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

  const client = () =>
    new HttpClient({
      system: 'Coolify',
      baseUrl,
      headers: { authorization: 'Bearer s3cret-token' },
      timeoutMs: 500,
    });
  const schema = z.object({ uuid: z.string() });
  const failureOf = (p: Promise<unknown>) =>
    p.then(
      () => undefined,
      (err: unknown) => err as ApplicationFailure,
    );

  it('sends the credential and returns the checked body', async () => {
    const res = await client().request({ path: '/api/v1/applications/app-1', schema });
    expect(res.body.uuid).toBe('app-1');
    expect(seen.at(-1)?.authorization).toBe('Bearer s3cret-token');
  });

  it('classifies 403 with the upstream message and no credential in it', async () => {
    const f = await failureOf(client().request({ path: '/x', query: { status: 403 }, schema }));
    expect(f).toBeInstanceOf(ApplicationFailure);
    expect(f?.type).toBe('Unauthorized');
    expect(f?.message).toContain('token lacks the deploy ability');
    expect(JSON.stringify(f)).not.toContain('s3cret-token');
  });

  it('turns 429 Retry-After into nextRetryDelay', async () => {
    const f = await failureOf(client().request({ path: '/x', query: { status: 429 }, schema }));
    expect(f?.type).toBe('RateLimited');
    expect(f?.nextRetryDelay).toBe(3000);
  });

  it('reports a body that breaks its contract as ContractViolation', async () => {
    expect((await failureOf(client().request({ path: '/wrong-shape', schema })))?.type).toBe(
      'ContractViolation',
    );
    expect((await failureOf(client().request({ path: '/bad-json', schema })))?.type).toBe(
      'ContractViolation',
    );
  });

  it('reports refused connections and timeouts as retryable UpstreamUnavailable', async () => {
    const refused = new HttpClient({ system: 'Coolify', baseUrl: 'http://127.0.0.1:1' });
    const f = await failureOf(refused.request({ path: '/x', schema }));
    expect(f?.type).toBe('UpstreamUnavailable');
    expect(f?.nonRetryable).toBe(false);
    const slow = await failureOf(client().request({ path: '/slow', schema }));
    expect(slow?.type).toBe('UpstreamUnavailable');
    expect(slow?.message).toContain('timed out');
  });

  it('lets the caller cancel', async () => {
    const abort = new AbortController();
    const pending = failureOf(client().request({ path: '/slow', schema, signal: abort.signal }));
    abort.abort();
    const err = await pending;
    expect(err).not.toBeInstanceOf(ApplicationFailure);
  });
});
