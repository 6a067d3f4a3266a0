/**
 * Image registry activities (OCI Distribution API): resolve a release tag to the digest that deployments
 * pin (L2), and check that a digest is still in the registry, which a rollback needs (B3 rollback
 * readiness). Both read a manifest with the four accepted media types, verify the bytes against their digest,
 * and authenticate the way the registry asks: anonymously, with HTTP Basic, or with a Bearer token from the
 * token service named in its `WWW-Authenticate` challenge.
 *
 * Manifests are read with GET rather than HEAD: the body is what proves the digest (a HEAD only repeats the
 * registry's claim), manifests are small, and the shared HTTP client speaks GET.
 */
import { createHash } from 'node:crypto';
import { z } from 'zod';
import { FailureType, failure } from '../../errors';
import { cancellationSignal, parseActivityInput } from '../activity-support';
import type { Fetch, HttpResponse } from '../http/http-client';
import { HttpClient } from '../http/http-client';
import type { ManifestBody as ManifestBodyType } from './registry-api';
import {
  Digest,
  MANIFEST_MEDIA_TYPES,
  ManifestBody,
  RepositoryName,
  Tag,
  TokenResponse,
  errorCodes,
  parseAuthChallenge,
} from './registry-api';

/** Input of `resolveImageDigest`. */
export const ResolveImageDigestInput = z.object({ tag: Tag });
export type ResolveImageDigestInput = z.infer<typeof ResolveImageDigestInput>;

/** Result of `resolveImageDigest`: the verified digest and the reference to pin (`host/repo@digest`). */
export const ResolveImageDigestResult = z.object({
  repository: z.string(),
  tag: z.string(),
  digest: z.string(),
  mediaType: z.string(),
  size: z.number(),
  reference: z.string(),
  /** For an index: the digest and platform of each image in it. */
  platforms: z.array(z.object({ digest: z.string(), os: z.string(), architecture: z.string() })).optional(),
});
export type ResolveImageDigestResult = z.infer<typeof ResolveImageDigestResult>;

/** Input of `checkDigestExists`. */
export const CheckDigestExistsInput = z.object({ digest: Digest });
export type CheckDigestExistsInput = z.infer<typeof CheckDigestExistsInput>;

/** Result of `checkDigestExists`; `mediaType` when it exists. */
export const CheckDigestExistsResult = z.object({
  repository: z.string(),
  digest: z.string(),
  exists: z.boolean(),
  mediaType: z.string().optional(),
  reference: z.string(),
});
export type CheckDigestExistsResult = z.infer<typeof CheckDigestExistsResult>;

export interface RegistryActivitiesOptions {
  /** The registry's base URL, without `/v2`: `https://registry.luxima.id`. */
  baseUrl: string;
  /** The repository the release images live in: `aceh-commerce`. */
  repository: string;
  /** Credentials for Basic auth or for the token service; resolved by the worker. */
  username?: string;
  password?: string;
  fetch?: Fetch;
  /** Per-request timeout; 30 s by default. */
  timeoutMs?: number;
}

export interface RegistryActivities {
  resolveImageDigest: (input: ResolveImageDigestInput) => Promise<ResolveImageDigestResult>;
  checkDigestExists: (input: CheckDigestExistsInput) => Promise<CheckDigestExistsResult>;
}

interface Fetched<T> {
  res: HttpResponse<T>;
  /** The exact bytes of the body (the digest is over these, not over re-serialised JSON). */
  bytes: Uint8Array;
}

const SYSTEM = 'Registry';
const TOKEN_SYSTEM = 'Registry token service';

/**
 * Builds the registry activities over one repository.
 *
 * Idempotency: both activities only read, so any attempt may be retried. A Bearer token is cached in the
 * factory until shortly before it expires (`expires_in`, 60 s when absent); credentials are sent only after
 * the registry's challenge asks for them and never appear in results, messages or details.
 *
 * Failures: `InvalidInput` (malformed tag or digest), `NotFound` (`resolveImageDigest` of a tag the
 * repository does not have; `checkDigestExists` answers `exists: false` instead), `Unauthorized` (401/403,
 * a challenge we have no credentials for, a token the registry still refuses), `RateLimited` (429),
 * `UpstreamUnavailable` (5xx, network, registry down), `ContractViolation` (a body that is not a manifest,
 * a media type we did not ask for, or bytes that do not hash to the digest the registry states).
 */
export function createRegistryActivities(options: RegistryActivitiesOptions): RegistryActivities {
  const repository = RepositoryName.parse(options.repository);
  const baseUrl = options.baseUrl.replace(/\/+$/, '').replace(/\/v2$/, '');
  const host = new URL(baseUrl).host;
  const baseFetch = options.fetch ?? fetch;
  const basic =
    options.username !== undefined && options.password !== undefined
      ? `Basic ${Buffer.from(`${options.username}:${options.password}`).toString('base64')}`
      : undefined;
  let authorization: string | undefined;
  let bearerExpiresAtMs = 0;

  /** One request through the shared client, keeping a copy of the exact body bytes. */
  async function send<S extends z.ZodType>(
    target: { system: string; baseUrl: string; path: string; query?: Record<string, string> },
    headers: Record<string, string>,
    schema: S | undefined,
    acceptStatuses: number[],
    signal: AbortSignal,
  ): Promise<Fetched<z.infer<S>>> {
    let copy: Response | undefined;
    const client = new HttpClient({
      system: target.system,
      baseUrl: target.baseUrl,
      headers,
      timeoutMs: options.timeoutMs,
      fetch: async (input, init) => {
        const response = await baseFetch(input, init);
        copy = response.clone();
        return response;
      },
    });
    const res = await client.request({
      path: target.path,
      query: target.query,
      schema,
      signal,
      acceptStatuses,
    });
    const bytes = copy ? new Uint8Array(await copy.arrayBuffer()) : new Uint8Array();
    return { res, bytes };
  }

  /** Answers a 401 challenge with the credential it asks for; throws Unauthorized when we cannot. */
  async function authenticate(challengeHeader: string | null, operation: string, signal: AbortSignal) {
    const challenge = parseAuthChallenge(challengeHeader);
    const details = { system: SYSTEM, operation, scheme: challenge?.scheme ?? 'none' };
    if (challenge?.scheme === 'basic') {
      if (!basic) {
        throw failure(
          FailureType.Unauthorized,
          `${SYSTEM} ${operation} asks for Basic credentials and none are configured; set the registry username and password`,
          { details },
        );
      }
      authorization = basic;
      return;
    }
    if (challenge?.scheme !== 'bearer' || !challenge.params['realm']) {
      throw failure(
        FailureType.Unauthorized,
        `${SYSTEM} ${operation} answered 401 with a challenge we cannot answer (${challenge?.scheme ?? 'none'})`,
        { details },
      );
    }
    const realm = new URL(challenge.params['realm']);
    const query: Record<string, string> = Object.fromEntries(realm.searchParams);
    if (challenge.params['service']) query['service'] = challenge.params['service'];
    query['scope'] = challenge.params['scope'] ?? `repository:${repository}:pull`;
    const { res } = await send(
      { system: TOKEN_SYSTEM, baseUrl: realm.origin, path: realm.pathname, query },
      basic ? { authorization: basic } : {},
      TokenResponse,
      [],
      signal,
    );
    const token = res.body.token ?? res.body.access_token;
    authorization = `Bearer ${token}`;
    bearerExpiresAtMs = Date.now() + ((res.body.expires_in ?? 60) - 10) * 1000;
  }

  /** GET of a manifest by tag or digest; undefined on 404 (with the registry's error codes). */
  async function getManifest(
    reference: string,
    signal: AbortSignal,
  ): Promise<{ found: Fetched<ManifestBodyType> } | { missing: string[] }> {
    const path = `/v2/${repository}/manifests/${encodeURIComponent(reference)}`;
    const operation = `GET ${path}`;
    if (authorization?.startsWith('Bearer ') && Date.now() >= bearerExpiresAtMs) authorization = undefined;
    for (let round = 0; ; round++) {
      const headers: Record<string, string> = { accept: MANIFEST_MEDIA_TYPES.join(', ') };
      if (authorization) headers['authorization'] = authorization;
      const fetched = await send(
        { system: SYSTEM, baseUrl, path },
        headers,
        ManifestBody,
        [401, 404],
        signal,
      );
      const { res } = fetched;
      if (res.status === 404) return { missing: errorCodes(new TextDecoder().decode(fetched.bytes)) };
      if (res.status !== 401) return { found: fetched };
      if (round > 0) {
        throw failure(
          FailureType.Unauthorized,
          `${SYSTEM} ${operation} still answered 401 with the credential it asked for; check the registry credentials and their pull permission on ${repository}`,
          { details: { system: SYSTEM, operation, status: 401 } },
        );
      }
      authorization = undefined;
      await authenticate(res.headers.get('www-authenticate'), operation, signal);
    }
  }

  /** The digest of the bytes, verified against the one the registry states (and the one asked for). */
  function verifiedDigest(fetched: Fetched<ManifestBodyType>, operation: string, expected?: string): string {
    const stated = fetched.res.headers.get('docker-content-digest') ?? undefined;
    const claimed = expected ?? stated;
    const algorithm = claimed?.split(':')[0] ?? 'sha256';
    if (algorithm !== 'sha256' && algorithm !== 'sha512') {
      throw failure(
        FailureType.ContractViolation,
        `${SYSTEM} ${operation} uses digest algorithm ${algorithm}`,
        {
          details: { system: SYSTEM, operation, digest: claimed },
        },
      );
    }
    const computed = `${algorithm}:${createHash(algorithm).update(fetched.bytes).digest('hex')}`;
    for (const [what, value] of [
      ['stated (Docker-Content-Digest)', stated],
      ['asked for', expected],
    ] as const) {
      if (value !== undefined && value.split(':')[0] === algorithm && value !== computed) {
        throw failure(
          FailureType.ContractViolation,
          `${SYSTEM} ${operation}: the manifest hashes to ${computed}, not the digest ${what} ${value}; the registry content is corrupt or was replaced`,
          { details: { system: SYSTEM, operation, computed, stated, expected } },
        );
      }
    }
    return computed;
  }

  function mediaTypeOf(fetched: Fetched<ManifestBodyType>, operation: string): string {
    const header = fetched.res.headers.get('content-type')?.split(';')[0]?.trim().toLowerCase() ?? '';
    const declared = fetched.res.body.mediaType;
    // A registry names the manifest's type in Content-Type; only a generic type defers to the body's own.
    const generic = header === '' || header === 'application/json' || header === 'application/octet-stream';
    const mediaType = generic ? declared : header;
    if (
      !mediaType ||
      !(MANIFEST_MEDIA_TYPES as readonly string[]).includes(mediaType) ||
      (declared && declared !== mediaType)
    ) {
      throw failure(
        FailureType.ContractViolation,
        `${SYSTEM} ${operation} answered a manifest of type ${header || declared || 'unknown'}, not one of those asked for`,
        { details: { system: SYSTEM, operation, contentType: header, mediaType: declared } },
      );
    }
    return mediaType;
  }

  return {
    async resolveImageDigest(raw) {
      const input = parseActivityInput(ResolveImageDigestInput, raw, 'resolveImageDigest');
      const operation = `GET /v2/${repository}/manifests/${input.tag}`;
      const got = await getManifest(input.tag, cancellationSignal());
      if ('missing' in got) {
        const codes = got.missing.length ? ` (${got.missing.join(', ')})` : '';
        throw failure(
          FailureType.NotFound,
          `image ${host}/${repository}:${input.tag} does not exist${codes}; was the release image pushed?`,
          {
            details: {
              system: SYSTEM,
              operation,
              status: 404,
              repository,
              tag: input.tag,
              codes: got.missing,
            },
          },
        );
      }
      const mediaType = mediaTypeOf(got.found, operation);
      const digest = verifiedDigest(got.found, operation);
      const body = got.found.res.body;
      const platforms =
        'manifests' in body
          ? body.manifests.map((m) => ({
              digest: m.digest,
              os: m.platform?.os ?? 'unknown',
              architecture: m.platform?.architecture ?? 'unknown',
            }))
          : undefined;
      return {
        repository,
        tag: input.tag,
        digest,
        mediaType,
        size: got.found.bytes.length,
        reference: `${host}/${repository}@${digest}`,
        ...(platforms ? { platforms } : {}),
      };
    },

    async checkDigestExists(raw) {
      const input = parseActivityInput(CheckDigestExistsInput, raw, 'checkDigestExists');
      const operation = `GET /v2/${repository}/manifests/${input.digest}`;
      const reference = `${host}/${repository}@${input.digest}`;
      const got = await getManifest(input.digest, cancellationSignal());
      if ('missing' in got) return { repository, digest: input.digest, exists: false, reference };
      const mediaType = mediaTypeOf(got.found, operation);
      verifiedDigest(got.found, operation, input.digest);
      return { repository, digest: input.digest, exists: true, mediaType, reference };
    },
  };
}
