/**
 * The registry fake: the images it makes are valid OCI images (checked against the official image-spec
 * JSON Schemas, digests recomputed from the bytes it serves), and it answers the real registry activities
 * as a distribution registry would.
 */
import { createHash } from 'node:crypto';
import zlib from 'node:zlib';
import { ApplicationFailure } from '@temporalio/common';
import { MockActivityEnvironment } from '@temporalio/testing';
import { DefaultLogger } from '@temporalio/worker';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createRegistryActivities } from '../../../src/activities/registry/registry-activities';
import { OCI_MANIFEST, RegistryFake } from '../../../src/sandbox/fakes/registry-fake';
import { loadOciSchemas } from '../../activities/registry/oci-layout';

const REPOSITORY = 'aceh-commerce';
let fake: RegistryFake;
let seq = 0;
const nextTag = () => `1.${++seq}.0`;

beforeAll(async () => {
  fake = await RegistryFake.start({ repositories: [REPOSITORY] });
});

afterAll(async () => {
  await fake?.close();
});

afterEach(() => {
  const left = [...fake.violations];
  fake.server.reset();
  expect(left).toEqual([]);
});

const activities = (repository = REPOSITORY) =>
  createRegistryActivities({ baseUrl: fake.baseUrl, repository, timeoutMs: 2_000 });

function run<R>(fn: () => Promise<R>): Promise<R> {
  const env = new MockActivityEnvironment({ activityId: 'reg-fake' }, { logger: new DefaultLogger('ERROR') });
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

const sha256 = (bytes: Uint8Array) => `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
const accept = { accept: OCI_MANIFEST };

describe('pushImage', () => {
  it('makes a valid OCI image whose digests are those of the bytes served', async () => {
    const schemas = loadOciSchemas();
    const tag = nextTag();
    const digest = fake.pushImage(tag);

    const res = await fetch(`${fake.baseUrl}/v2/${REPOSITORY}/manifests/${tag}`, { headers: accept });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe(OCI_MANIFEST);
    expect(res.headers.get('docker-content-digest')).toBe(digest);
    const bytes = new Uint8Array(await res.arrayBuffer());
    expect(sha256(bytes)).toBe(digest);
    const manifest = JSON.parse(Buffer.from(bytes).toString('utf8')) as {
      config: { digest: string; size: number };
      layers: { digest: string; size: number }[];
    };
    expect(schemas.manifest(manifest), JSON.stringify(schemas.manifest.errors)).toBe(true);
    expect(manifest.layers).toHaveLength(1);

    const fetchBlob = async (d: string) => {
      const r = await fetch(`${fake.baseUrl}/v2/${REPOSITORY}/blobs/${d}`);
      expect(r.status).toBe(200);
      expect(r.headers.get('docker-content-digest')).toBe(d);
      return new Uint8Array(await r.arrayBuffer());
    };
    const configBytes = await fetchBlob(manifest.config.digest);
    expect(sha256(configBytes)).toBe(manifest.config.digest);
    expect(configBytes.length).toBe(manifest.config.size);
    const config = JSON.parse(Buffer.from(configBytes).toString('utf8')) as {
      rootfs: { diff_ids: string[] };
      config: { Labels: Record<string, string> };
    };
    expect(schemas.config(config), JSON.stringify(schemas.config.errors)).toBe(true);
    expect(config.config.Labels['org.opencontainers.image.version']).toBe(tag);

    const layer = await fetchBlob(manifest.layers[0]!.digest);
    expect(sha256(layer)).toBe(manifest.layers[0]!.digest);
    expect(layer.length).toBe(manifest.layers[0]!.size);
    const tar = zlib.gunzipSync(layer);
    expect(config.rootfs.diff_ids).toEqual([sha256(tar)]);
    expect(tar.subarray(0, 11).toString('ascii')).toBe('app/VERSION');
    expect(tar.toString('ascii')).toContain(`${REPOSITORY}:${tag}`);
  });

  it('is deterministic per tag and build; another build moves the tag and keeps the old digest', async () => {
    const tag = nextTag();
    const first = fake.pushImage(tag);
    expect(fake.pushImage(tag)).toBe(first);
    const rebuilt = fake.pushImage(tag, { build: 'b2' });
    expect(rebuilt).not.toBe(first);
    const resolved = await run(() => activities().resolveImageDigest({ tag }));
    expect(resolved.digest).toBe(rebuilt);
    const old = await run(() => activities().checkDigestExists({ digest: first }));
    expect(old.exists).toBe(true);
    expect(fake.tags()).toContain(tag);
  });

  it('refuses tags and names the distribution spec does not allow', () => {
    expect(() => fake.pushImage('-bad')).toThrow(/not a valid tag/);
    expect(() => fake.pushImage('1.0.0', { repository: 'Upper' })).toThrow(/not a valid repository/);
  });
});

describe('through the registry activities', () => {
  it('resolves a tag to the pushed digest and finds it by digest', async () => {
    const tag = nextTag();
    const digest = fake.pushImage(tag);
    const resolved = await run(() => activities().resolveImageDigest({ tag }));
    expect(resolved).toMatchObject({
      repository: REPOSITORY,
      tag,
      digest,
      mediaType: OCI_MANIFEST,
      reference: `${fake.host}/${REPOSITORY}@${digest}`,
    });
    const exists = await run(() => activities().checkDigestExists({ digest }));
    expect(exists).toMatchObject({ exists: true, mediaType: OCI_MANIFEST });
  });

  it('an unknown tag is NotFound with MANIFEST_UNKNOWN; a deleted digest no longer exists', async () => {
    const missing = await failureOf(run(() => activities().resolveImageDigest({ tag: '9.9.9' })));
    expect(missing.type).toBe('NotFound');
    expect(missing.details?.[0]).toMatchObject({ codes: ['MANIFEST_UNKNOWN'] });

    const tag = nextTag();
    const digest = fake.pushImage(tag);
    expect(fake.deleteManifest(digest)).toBe(true);
    expect(fake.deleteManifest(digest)).toBe(false);
    expect(fake.tags()).not.toContain(tag);
    const gone = await run(() => activities().checkDigestExists({ digest }));
    expect(gone.exists).toBe(false);
    const untagged = await failureOf(run(() => activities().resolveImageDigest({ tag })));
    expect(untagged.type).toBe('NotFound');
  });

  it('an unknown repository is NAME_UNKNOWN', async () => {
    const err = await failureOf(run(() => activities('nobody-here').resolveImageDigest({ tag: '1.0.0' })));
    expect(err.type).toBe('NotFound');
    expect(err.details?.[0]).toMatchObject({ codes: ['NAME_UNKNOWN'] });
  });
});

describe('the HTTP API', () => {
  it('answers HEAD with the headers of GET and no body, by tag and by digest', async () => {
    const tag = nextTag();
    const digest = fake.pushImage(tag);
    const size = fake.manifest(digest)?.bytes.length;
    for (const reference of [tag, digest]) {
      const res = await fetch(`${fake.baseUrl}/v2/${REPOSITORY}/manifests/${reference}`, {
        method: 'HEAD',
        headers: accept,
      });
      expect(res.status).toBe(200);
      expect(res.headers.get('docker-content-digest')).toBe(digest);
      expect(res.headers.get('content-length')).toBe(String(size));
      expect(res.headers.get('docker-distribution-api-version')).toBe('registry/2.0');
      expect((await res.arrayBuffer()).byteLength).toBe(0);
    }
  });

  it('serves an OCI manifest only to a client that accepts it', async () => {
    const tag = nextTag();
    fake.pushImage(tag);
    const res = await fetch(`${fake.baseUrl}/v2/${REPOSITORY}/manifests/${tag}`, {
      headers: { accept: 'application/vnd.docker.distribution.manifest.v2+json' },
    });
    expect(res.status).toBe(404);
    expect(await res.json()).toMatchObject({ errors: [{ code: 'MANIFEST_UNKNOWN' }] });
  });

  it('lists tags, page by page, and deletes by tag or digest', async () => {
    const fresh = await RegistryFake.start();
    try {
      const digest = fresh.pushImage('1.0.0');
      fresh.pushImage('1.1.0');
      fresh.pushImage('1.2.0');
      const v2 = await fetch(`${fresh.baseUrl}/v2/`);
      expect(v2.status).toBe(200);
      const page = await fetch(`${fresh.baseUrl}/v2/aceh-commerce/tags/list?n=2`);
      expect(await page.json()).toEqual({ name: 'aceh-commerce', tags: ['1.0.0', '1.1.0'] });
      expect(page.headers.get('link')).toBe('</v2/aceh-commerce/tags/list?n=2&last=1.1.0>; rel="next"');
      const rest = await fetch(`${fresh.baseUrl}/v2/aceh-commerce/tags/list?n=2&last=1.1.0`);
      expect(await rest.json()).toEqual({ name: 'aceh-commerce', tags: ['1.2.0'] });

      const byTag = await fetch(`${fresh.baseUrl}/v2/aceh-commerce/manifests/1.2.0`, { method: 'DELETE' });
      expect(byTag.status).toBe(202);
      const byDigest = await fetch(`${fresh.baseUrl}/v2/aceh-commerce/manifests/${digest}`, {
        method: 'DELETE',
      });
      expect(byDigest.status).toBe(202);
      expect(fresh.tags()).toEqual(['1.1.0']);
      const again = await fetch(`${fresh.baseUrl}/v2/aceh-commerce/manifests/${digest}`, {
        method: 'DELETE',
      });
      expect(again.status).toBe(404);
      expect(fresh.violations).toEqual([]);
    } finally {
      await fresh.close();
    }
  });

  it('records requests outside what it serves as violations', async () => {
    const upload = await fetch(`${fake.baseUrl}/v2/${REPOSITORY}/blobs/uploads/`, { method: 'POST' });
    expect(upload.status).toBe(404);
    const put = await fetch(`${fake.baseUrl}/v2/${REPOSITORY}/manifests/1.0.0`, {
      method: 'PUT',
      body: '{}',
    });
    expect(put.status).toBe(405);
    expect(await put.json()).toMatchObject({ errors: [{ code: 'UNSUPPORTED' }] });
    const badDigest = await fetch(`${fake.baseUrl}/v2/${REPOSITORY}/manifests/sha256:xyz`, {
      headers: accept,
    });
    expect(badDigest.status).toBe(400);
    expect(await badDigest.json()).toMatchObject({ errors: [{ code: 'DIGEST_INVALID' }] });
    expect(fake.violations).toEqual([
      `POST /v2/${REPOSITORY}/blobs/uploads/: no such endpoint in the distribution API`,
      `PUT /v2/${REPOSITORY}/manifests/1.0.0: the fake takes images from pushImage, not over HTTP`,
      `GET /v2/${REPOSITORY}/manifests/sha256:xyz: malformed digest`,
    ]);
    fake.violations.length = 0;
  });
});
