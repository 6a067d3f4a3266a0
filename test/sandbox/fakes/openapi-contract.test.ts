import fs from 'node:fs';
import YAML from 'yaml';
import { describe, expect, it } from 'vitest';
import { COOLIFY_SPEC } from '../../../src/sandbox/fakes/coolify-fake';
import { OpenApiContract } from '../../../src/sandbox/fakes/openapi-contract';
import { PROMETHEUS_SPEC } from '../../../src/sandbox/fakes/prometheus-fake';

const auth = { authorization: 'Bearer t0ken', 'content-type': 'application/json' };

describe('OpenApiContract (against the Coolify document)', () => {
  const contract = OpenApiContract.fromFile(COOLIFY_SPEC);

  it('matches paths under the server base path, literal segments before templates', () => {
    expect(contract.findOperation('GET', '/api/v1/applications/abc')).toMatchObject({
      operationId: 'get-application-by-uuid',
      pathParams: { uuid: 'abc' },
    });
    expect(contract.findOperation('POST', '/api/v1/applications/public')?.operationId).toBe(
      'create-public-application',
    );
    expect(contract.findOperation('GET', '/api/v1/deployments/applications/abc')?.operationId).toBe(
      'list-deployments-by-app-uuid',
    );
    expect(contract.findOperation('GET', '/deploy')).toBeUndefined();
  });

  it('accepts a request that follows the document', () => {
    const { violations } = contract.validateRequest({
      method: 'PATCH',
      path: '/api/v1/applications/abc',
      headers: auth,
      body: JSON.stringify({ docker_registry_image_tag: 'v1.2.0' }),
    });
    expect(violations).toEqual([]);
    const deploy = contract.validateRequest({
      method: 'POST',
      path: '/api/v1/deploy',
      query: new URLSearchParams({ uuid: 'abc', force: 'true' }),
      headers: auth,
    });
    expect(deploy.violations).toEqual([]);
  });

  it('reports what breaks it: unknown operation, parameters, body, credential', () => {
    const v = (req: Parameters<OpenApiContract['validateRequest']>[0]) =>
      contract.validateRequest(req).violations;
    expect(v({ method: 'GET', path: '/api/v1/nothing-here', headers: auth })).toEqual([
      'GET /api/v1/nothing-here: no such operation in the document',
    ]);
    expect(
      v({
        method: 'POST',
        path: '/api/v1/deploy',
        query: new URLSearchParams({ uuid: 'a', forse: '1' }),
        headers: auth,
      }),
    ).toEqual(['POST /api/v1/deploy: query parameter forse is not in the document']);
    expect(
      v({
        method: 'GET',
        path: '/api/v1/deployments/applications/a',
        query: new URLSearchParams({ take: '0' }),
        headers: auth,
      }),
    ).toEqual(['GET /api/v1/deployments/applications/a query parameter take: (root) must be >= 1']);
    expect(
      v({
        method: 'POST',
        path: '/api/v1/applications/a/rollback',
        headers: auth,
        body: JSON.stringify({ commit: 5 }),
      }),
    ).toEqual(['POST /api/v1/applications/a/rollback body: /commit must be string']);
    expect(v({ method: 'POST', path: '/api/v1/applications/a/rollback', headers: auth })).toEqual([
      'POST /api/v1/applications/a/rollback: the required body is missing',
    ]);
    expect(v({ method: 'GET', path: '/api/v1/applications/a', headers: {} })).toEqual([
      'GET /api/v1/applications/a: the operation requires a bearer credential and none was sent',
    ]);
    expect(v({ method: 'GET', path: '/api/v1/applications/a', headers: auth, body: '{}' })).toEqual([
      'GET /api/v1/applications/a: the operation takes no body but one was sent',
    ]);
  });

  it('checks responses: documented statuses, content types and bodies, shared error responses', () => {
    const op = contract.findOperation('GET', '/api/v1/deployments/x')!;
    const json = 'application/json';
    expect(
      contract.validateResponse(op, { status: 200, contentType: json, body: '{"status":"queued"}' }),
    ).toEqual([]);
    expect(contract.validateResponse(op, { status: 200, contentType: json, body: '{"status":1}' })).toEqual([
      'GET /deployments/{uuid} -> 200 body: /status must be string',
    ]);
    expect(contract.validateResponse(op, { status: 201, contentType: json, body: '{}' })).toEqual([
      'GET /deployments/{uuid} -> 201: status 201 is not documented for get-deployment-by-uuid',
    ]);
    expect(contract.validateResponse(op, { status: 200, contentType: 'text/html', body: 'x' })).toEqual([
      'GET /deployments/{uuid} -> 200: content type text/html is not documented (application/json)',
    ]);
    // 429 is not listed for the operation, but the document's shared 429 response still shapes the body.
    expect(
      contract.validateResponse(op, { status: 429, contentType: json, body: '{"message":"slow"}' }),
    ).toEqual([]);
    expect(contract.validateResponse(op, { status: 429, contentType: json, body: '{"message":3}' })).toEqual([
      'GET /deployments/{uuid} -> 429 body: /message must be string',
    ]);
    const version = contract.findOperation('GET', '/api/v1/version')!;
    expect(
      contract.validateResponse(version, { status: 200, contentType: 'text/html', body: '4.3.10' }),
    ).toEqual([]);
  });

  it('applies declared deviations and nothing else', () => {
    const strict = contract.findOperation('GET', '/api/v1/deployments/applications/a')!;
    const body = JSON.stringify({ count: 0, deployments: [] });
    expect(contract.validateResponse(strict, { status: 200, contentType: 'application/json', body })).toEqual(
      ['GET /deployments/applications/{uuid} -> 200 body: (root) must be array'],
    );
    const lenient = OpenApiContract.fromFile(COOLIFY_SPEC, {
      deviations: [
        {
          kind: 'response-schema',
          operationId: 'list-deployments-by-app-uuid',
          status: 200,
          schema: { type: 'object', required: ['count'] },
          reason: 'test',
        },
      ],
    });
    const op = lenient.findOperation('GET', '/api/v1/deployments/applications/a')!;
    expect(lenient.validateResponse(op, { status: 200, contentType: 'application/json', body })).toEqual([]);
    expect(
      lenient.validateResponse(op, { status: 200, contentType: 'application/json', body: '{}' }),
    ).toEqual([
      "GET /deployments/applications/{uuid} -> 200 body: (root) must have required property 'count'",
    ]);
  });
});

describe('OpenApiContract (against the Prometheus document)', () => {
  const document = YAML.parse(fs.readFileSync(PROMETHEUS_SPEC, 'utf8')) as Record<string, unknown>;
  const form = { 'content-type': 'application/x-www-form-urlencoded' };
  // The document's `unixtime` is unknown to ajv-formats; `true` declares it (any value) and keeps Ajv quiet.
  const unixtime = { unixtime: true } as const;

  it('reads a number where one alternative of oneOf is a number, and a string otherwise', () => {
    const contract = new OpenApiContract(document, { formats: unixtime });
    const v = (query: Record<string, string>) =>
      contract.validateRequest({ method: 'GET', path: '/api/v1/query', query: new URLSearchParams(query) })
        .violations;
    expect(v({ query: 'up', time: '1767361020.5' })).toEqual([]);
    expect(v({ query: 'up', time: '2026-01-02T13:37:00Z' })).toEqual([]);
    expect(v({ query: 'up', time: 'soon' })).toContain(
      'GET /api/v1/query query parameter time: (root) must match exactly one schema in oneOf',
    );
  });

  it('checks form-encoded bodies field by field against the body schema', () => {
    const contract = new OpenApiContract(document, { formats: unixtime });
    const post = (body: string) =>
      contract.validateRequest({ method: 'POST', path: '/api/v1/query', headers: form, body }).violations;
    expect(post('query=up&limit=10')).toEqual([]);
    expect(post('query=up&limit=ten')).toEqual(['POST /api/v1/query body: /limit must be integer']);
    expect(post('limit=10')).toEqual(["POST /api/v1/query body: (root) must have required property 'query'"]);
    expect(post('query=up&extra=1')).toEqual([
      'POST /api/v1/query body: (root) must NOT have additional properties',
    ]);
  });

  it("takes a document's own formats instead of ajv-formats'", () => {
    const step = { query: 'up', start: '1', end: '2', step: '15s' };
    const iso = new OpenApiContract(document, { formats: unixtime });
    const req = { method: 'GET', path: '/api/v1/query_range', query: new URLSearchParams(step) };
    // ajv-formats reads `duration` as ISO 8601 (PT15S): Prometheus's 15s would be refused.
    expect(iso.validateRequest(req).violations).not.toEqual([]);
    const own = new OpenApiContract(document, {
      formats: { ...unixtime, duration: /^(\d+(ms|s|m|h|d|w|y))+$/ },
    });
    expect(own.validateRequest(req).violations).toEqual([]);
  });
});
