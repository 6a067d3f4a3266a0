import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Info } from '@temporalio/activity';
import { ApplicationFailure, CancelledFailure } from '@temporalio/common';
import { MockActivityEnvironment } from '@temporalio/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Fetch } from '../../../src/activities/http/http-client';
import type {
  RegistryActivities,
  RegistryActivitiesOptions,
} from '../../../src/activities/registry/registry-activities';
import { createRegistryActivities } from '../../../src/activities/registry/registry-activities';
import { serialisedFailure } from '../../../src/sandbox/fakes/scripted-http-server';
import type { BuiltImage } from './oci-layout';
import { OCI_INDEX, OCI_MANIFEST, buildOciLayout, loadOciSchemas } from './oci-layout';
import type { RunningRegistry, TokenService } from './registry-harness';
import {
  freePort,
  makeTokenCertificate,
  requireBinaries,
  skopeoPush,
  skopeoRawDigest,
  startRegistry,
  startTokenService,
} from './registry-harness';

const REPOSITORY = 'aceh-commerce';
const USER = 'ci-reader';
const PASSWORD = 'registry-test-password';
/** bcrypt (cost 5) of PASSWORD, as `htpasswd -B` writes it; Distribution accepts only bcrypt entries. */
const HTPASSWD = `${USER}:$2b$05$G2jJK6xwr/cJhoRpoi5A4.Jfc2VuVwhmTLAqF.Vzea1XnS8k45Xom\n`;
const TOKEN_SERVICE = 'aceh-release-test-registry';
const TOKEN_ISSUER = 'aceh-release-test-token-issuer';

let workDir: string;
let open: RunningRegistry;
let basicAuth: RunningRegistry;
let tokenAuth: RunningRegistry;
let tokens: TokenService;
let images: Record<string, BuiltImage>;
let dockerV2Digest: string;
const failures: unknown[] = [];
let seq = 0;

beforeAll(async () => {
  const bins = requireBinaries([
    { binary: 'docker-registry', debianPackage: 'docker-registry' },
    { binary: 'skopeo', debianPackage: 'skopeo' },
    { binary: 'openssl', debianPackage: 'openssl' },
  ]);
  workDir = fs.mkdtempSync(path.join(os.tmpdir(), 'registry-test-'));
  const storageDir = path.join(workDir, 'storage');
  const layoutDir = path.join(workDir, 'layout');
  const built = buildOciLayout(layoutDir, [
    { tag: 'v1.0.0' },
    { tag: 'v1.1.0' },
    {
      tag: 'v1.2.0',
      platforms: [
        { os: 'linux', architecture: 'amd64' },
        { os: 'linux', architecture: 'arm64' },
      ],
    },
    { tag: 'v1.3.0-docker' },
  ]);
  images = Object.fromEntries(built.map((b) => [b.tag, b]));

  open = await startRegistry({
    binary: bins['docker-registry']!,
    workDir,
    storageDir,
    auth: { kind: 'none' },
  });
  const push = {
    binary: bins['skopeo']!,
    workDir,
    layoutDir,
    hostPort: open.hostPort,
    repository: REPOSITORY,
  };
  await skopeoPush({ ...push, tag: 'v1.0.0' });
  await skopeoPush({ ...push, tag: 'v1.1.0' });
  await skopeoPush({ ...push, tag: 'v1.2.0', all: true });
  await skopeoPush({ ...push, tag: 'v1.3.0-docker', format: 'v2s2' });
  dockerV2Digest = await skopeoRawDigest({
    binary: bins['skopeo']!,
    workDir,
    reference: `docker://${open.hostPort}/${REPOSITORY}:v1.3.0-docker`,
  });

  const htpasswd = path.join(workDir, 'htpasswd');
  fs.writeFileSync(htpasswd, HTPASSWD);
  basicAuth = await startRegistry({
    binary: bins['docker-registry']!,
    workDir,
    storageDir,
    auth: { kind: 'htpasswd', file: htpasswd },
  });

  const cert = await makeTokenCertificate(bins['openssl']!, workDir);
  tokens = await startTokenService({ username: USER, password: PASSWORD, issuer: TOKEN_ISSUER, ...cert });
  tokenAuth = await startRegistry({
    binary: bins['docker-registry']!,
    workDir,
    storageDir,
    auth: {
      kind: 'token',
      realm: tokens.realm,
      service: TOKEN_SERVICE,
      issuer: TOKEN_ISSUER,
      rootCertBundle: cert.certFile,
    },
  });
});

afterAll(async () => {
  for (const f of failures) expect(serialisedFailure(f)).not.toContain(PASSWORD);
  await Promise.all([open?.stop(), basicAuth?.stop(), tokenAuth?.stop(), tokens?.close()]);
  if (workDir) fs.rmSync(workDir, { recursive: true, force: true });
});

function activityEnv(info: Partial<Info> = {}): MockActivityEnvironment {
  seq += 1;
  return new MockActivityEnvironment({
    workflowExecution: { workflowId: `registry-test-${seq}-${Date.now()}`, runId: `run-${seq}` },
    activityId: `${seq}`,
    ...info,
  });
}

function run<I, O>(fn: (input: I) => Promise<O>, input: I, env = activityEnv()): Promise<O> {
  return env.run<[I], O, typeof fn>(fn, input);
}

async function failureOf(p: Promise<unknown>): Promise<ApplicationFailure> {
  try {
    await p;
  } catch (err) {
    failures.push(err);
    if (err instanceof ApplicationFailure) return err;
    throw err;
  }
  throw new Error('expected the activity to fail');
}

const registry = (baseUrl: string, extra: Partial<RegistryActivitiesOptions> = {}): RegistryActivities =>
  createRegistryActivities({ baseUrl, repository: REPOSITORY, timeoutMs: 5_000, ...extra });

/** A fetch that passes requests to the real registry and rewrites its answer (a corrupting proxy). */
function tampering(rewrite: (res: Response, body: ArrayBuffer) => Response): Fetch {
  return async (input, init) => {
    const res = await fetch(input, init);
    return rewrite(res, await res.arrayBuffer());
  };
}

describe('the test harness', () => {
  it('fails loudly, naming the Debian package, when a component is missing', () => {
    expect(() =>
      requireBinaries([{ binary: 'no-such-registry-binary', debianPackage: 'no-such-package' }]),
    ).toThrow('no-such-registry-binary (Debian package no-such-package)');
  });
});

describe('the OCI layout the tests push', () => {
  it('is valid against the official image-spec schemas', () => {
    const schemas = loadOciSchemas();
    const layoutDir = path.join(workDir, 'layout');
    const index = JSON.parse(fs.readFileSync(path.join(layoutDir, 'index.json'), 'utf8')) as unknown;
    expect(schemas.index(index)).toBe(true);
    const blob = (digest: string) =>
      JSON.parse(
        fs.readFileSync(path.join(layoutDir, 'blobs', 'sha256', digest.slice(7)), 'utf8'),
      ) as unknown;
    expect(schemas.manifest(blob(images['v1.0.0']!.digest))).toBe(true);
    expect(schemas.index(blob(images['v1.2.0']!.digest))).toBe(true);
    expect(schemas.manifest({ schemaVersion: 2, config: {}, layers: [] })).toBe(false);
  });
});

describe('resolveImageDigest', () => {
  it('resolves a tag to the digest of the manifest that was pushed', async () => {
    const result = await run(registry(open.baseUrl).resolveImageDigest, { tag: 'v1.1.0' });
    expect(result).toEqual({
      repository: REPOSITORY,
      tag: 'v1.1.0',
      digest: images['v1.1.0']!.digest,
      mediaType: OCI_MANIFEST,
      size: images['v1.1.0']!.size,
      reference: `${open.hostPort}/${REPOSITORY}@${images['v1.1.0']!.digest}`,
    });
  });

  it('resolves a multi-platform tag to its index, listing the platforms', async () => {
    const result = await run(registry(open.baseUrl).resolveImageDigest, { tag: 'v1.2.0' });
    expect(result.digest).toBe(images['v1.2.0']!.digest);
    expect(result.mediaType).toBe(OCI_INDEX);
    expect(result.platforms).toEqual(
      images['v1.2.0']!.manifests!.map((m) => ({
        digest: m.digest,
        os: 'linux',
        architecture: m.platform.architecture,
      })),
    );
  });

  it('resolves a Docker schema2 image (asking for the Docker media types too)', async () => {
    const result = await run(registry(open.baseUrl).resolveImageDigest, { tag: 'v1.3.0-docker' });
    expect(result.mediaType).toBe('application/vnd.docker.distribution.manifest.v2+json');
    expect(result.digest).toBe(dockerV2Digest);
  });

  it('fails non-retryably with NotFound for a tag that was never pushed', async () => {
    const f = await failureOf(run(registry(open.baseUrl).resolveImageDigest, { tag: 'v9.9.9' }));
    expect(f.type).toBe('NotFound');
    expect(f.nonRetryable).toBe(true);
    expect(f.message).toContain(`${REPOSITORY}:v9.9.9`);
    expect(f.message).toContain('MANIFEST_UNKNOWN');
  });

  it('fails retryably with UpstreamUnavailable when the registry is down', async () => {
    const down = `http://127.0.0.1:${await freePort()}`;
    const f = await failureOf(run(registry(down).resolveImageDigest, { tag: 'v1.1.0' }));
    expect(f.type).toBe('UpstreamUnavailable');
    expect(f.nonRetryable).toBe(false);
  });

  it('refuses a malformed tag', async () => {
    const f = await failureOf(run(registry(open.baseUrl).resolveImageDigest, { tag: 'v1.1.0/../x' }));
    expect(f.type).toBe('InvalidInput');
  });

  it('reports bytes that do not hash to the stated digest as ContractViolation', async () => {
    const wrong = `sha256:${'0'.repeat(64)}`;
    const fetchWithWrongDigest = tampering((res, body) => {
      const headers = new Headers(res.headers);
      if (headers.has('docker-content-digest')) headers.set('docker-content-digest', wrong);
      return new Response(body, { status: res.status, headers });
    });
    const f = await failureOf(
      run(registry(open.baseUrl, { fetch: fetchWithWrongDigest }).resolveImageDigest, { tag: 'v1.1.0' }),
    );
    expect(f.type).toBe('ContractViolation');
    expect(f.message).toContain(images['v1.1.0']!.digest);
    expect(f.nonRetryable).toBe(true);
  });

  it('reports a manifest type it did not ask for as ContractViolation', async () => {
    const schema1 = tampering((res, body) => {
      const headers = new Headers(res.headers);
      headers.set('content-type', 'application/vnd.docker.distribution.manifest.v1+prettyjws');
      return new Response(body, { status: res.status, headers });
    });
    const f = await failureOf(
      run(registry(open.baseUrl, { fetch: schema1 }).resolveImageDigest, { tag: 'v1.1.0' }),
    );
    expect(f.type).toBe('ContractViolation');
  });

  it('honours Retry-After when the registry rate-limits (429 TOOMANYREQUESTS)', async () => {
    const limited = tampering(
      () =>
        new Response(JSON.stringify({ errors: [{ code: 'TOOMANYREQUESTS', message: 'slow down' }] }), {
          status: 429,
          headers: { 'retry-after': '7', 'content-type': 'application/json' },
        }),
    );
    const f = await failureOf(
      run(registry(open.baseUrl, { fetch: limited }).resolveImageDigest, { tag: 'v1.1.0' }),
    );
    expect(f.type).toBe('RateLimited');
    expect(f.nextRetryDelay).toBe(7_000);
  });

  it('stops when the activity is cancelled', async () => {
    const hanging: Fetch = (_input, init) =>
      new Promise((_resolve, reject) =>
        init?.signal?.addEventListener('abort', () => reject(init.signal?.reason as Error)),
      );
    const env = activityEnv();
    const pending = run(
      registry(open.baseUrl, { fetch: hanging }).resolveImageDigest,
      { tag: 'v1.1.0' },
      env,
    );
    env.cancel();
    const err = await pending.then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(CancelledFailure);
  });
});

describe('checkDigestExists', () => {
  it('finds pushed manifests, indexes and the images inside an index', async () => {
    const activities = registry(open.baseUrl);
    for (const digest of [
      images['v1.0.0']!.digest,
      images['v1.2.0']!.digest,
      images['v1.2.0']!.manifests![1]!.digest,
      dockerV2Digest,
    ]) {
      const result = await run(activities.checkDigestExists, { digest });
      expect(result).toMatchObject({
        digest,
        exists: true,
        reference: `${open.hostPort}/${REPOSITORY}@${digest}`,
      });
    }
  });

  it('answers exists: false (not a failure) for a digest the registry does not have', async () => {
    const digest = `sha256:${randomBytes(32).toString('hex')}`;
    const result = await run(registry(open.baseUrl).checkDigestExists, { digest });
    expect(result).toEqual({
      repository: REPOSITORY,
      digest,
      exists: false,
      reference: `${open.hostPort}/${REPOSITORY}@${digest}`,
    });
  });

  it('fails retryably when the registry is down, and refuses what is not a digest', async () => {
    const down = `http://127.0.0.1:${await freePort()}`;
    const f = await failureOf(run(registry(down).checkDigestExists, { digest: images['v1.0.0']!.digest }));
    expect(f.type).toBe('UpstreamUnavailable');
    const bad = await failureOf(run(registry(open.baseUrl).checkDigestExists, { digest: 'sha256:abc' }));
    expect(bad.type).toBe('InvalidInput');
  });

  it('reports content that does not hash to the digest asked for as ContractViolation', async () => {
    const replaced = tampering((res) => {
      const body = JSON.stringify({
        schemaVersion: 2,
        mediaType: OCI_MANIFEST,
        config: images['v1.1.0'],
        layers: [],
      });
      const headers = new Headers(res.headers);
      headers.delete('docker-content-digest');
      headers.delete('content-length');
      return new Response(body, { status: res.status, headers });
    });
    const f = await failureOf(
      run(registry(open.baseUrl, { fetch: replaced }).checkDigestExists, {
        digest: images['v1.0.0']!.digest,
      }),
    );
    expect(f.type).toBe('ContractViolation');
  });
});

describe('a registry with Basic authentication (htpasswd)', () => {
  it('answers the Basic challenge with the configured credentials', async () => {
    const activities = registry(basicAuth.baseUrl, { username: USER, password: PASSWORD });
    const result = await run(activities.resolveImageDigest, { tag: 'v1.0.0' });
    expect(result.digest).toBe(images['v1.0.0']!.digest);
    expect((await run(activities.checkDigestExists, { digest: result.digest })).exists).toBe(true);
  });

  it('fails non-retryably without credentials and with a wrong password', async () => {
    const none = await failureOf(run(registry(basicAuth.baseUrl).resolveImageDigest, { tag: 'v1.0.0' }));
    expect(none.type).toBe('Unauthorized');
    expect(none.message).toContain('Basic');
    const wrong = await failureOf(
      run(registry(basicAuth.baseUrl, { username: USER, password: 'not-the-password' }).resolveImageDigest, {
        tag: 'v1.0.0',
      }),
    );
    expect(wrong.type).toBe('Unauthorized');
    expect(wrong.nonRetryable).toBe(true);
    expect(serialisedFailure(wrong)).not.toContain('not-the-password');
  });
});

describe('a registry with Bearer token authentication', () => {
  it('gets a pull token from the realm of the challenge and reuses it until it expires', async () => {
    tokens.requests.length = 0;
    const activities = registry(tokenAuth.baseUrl, { username: USER, password: PASSWORD });
    const result = await run(activities.resolveImageDigest, { tag: 'v1.2.0' });
    expect(result.digest).toBe(images['v1.2.0']!.digest);
    expect(tokens.requests).toEqual([
      { user: USER, service: TOKEN_SERVICE, scope: `repository:${REPOSITORY}:pull` },
    ]);
    expect((await run(activities.checkDigestExists, { digest: images['v1.0.0']!.digest })).exists).toBe(true);
    const missing = `sha256:${randomBytes(32).toString('hex')}`;
    expect((await run(activities.checkDigestExists, { digest: missing })).exists).toBe(false);
    expect(tokens.requests).toHaveLength(1);
  });

  it('fails non-retryably when the token service refuses the credentials', async () => {
    const activities = registry(tokenAuth.baseUrl, { username: USER, password: 'wrong-password-x' });
    const f = await failureOf(run(activities.resolveImageDigest, { tag: 'v1.0.0' }));
    expect(f.type).toBe('Unauthorized');
    expect(f.message).toContain('Registry token service');
    expect(serialisedFailure(f)).not.toContain('wrong-password-x');
  });
});
