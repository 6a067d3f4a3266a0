/**
 * The OCI Distribution API (v1.1, the Docker Registry HTTP API v2) as the registry activities use it: the
 * four manifest media types a pull accepts, the shapes of an image manifest and an image index (after the
 * OCI image-spec v1.1 JSON Schemas and Docker's schema2), the token answer of a Bearer token service
 * (Docker's `auth/token.md`) and the `WWW-Authenticate` challenge. No machine-readable description of the
 * API exists; the manifest schemas are the official ones for the bodies.
 */
import { z } from 'zod';

export const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';
export const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
export const DOCKER_MANIFEST_LIST = 'application/vnd.docker.distribution.manifest.list.v2+json';
export const DOCKER_MANIFEST = 'application/vnd.docker.distribution.manifest.v2+json';

/** Every manifest type the activities understand, for the `Accept` header of a manifest request. */
export const MANIFEST_MEDIA_TYPES = [OCI_INDEX, OCI_MANIFEST, DOCKER_MANIFEST_LIST, DOCKER_MANIFEST] as const;
export type ManifestMediaType = (typeof MANIFEST_MEDIA_TYPES)[number];

/** `<algorithm>:<hex>`; the registry activities verify sha256 and sha512. */
export const Digest = z
  .string()
  .regex(/^(sha256:[a-f0-9]{64}|sha512:[a-f0-9]{128})$/, 'must be a digest such as sha256:<64 hex digits>');

/** The distribution spec's tag grammar. */
export const Tag = z
  .string()
  .regex(/^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$/, 'must be an image tag such as v1.2.0 or v1.2.0-rc1');

/** The distribution spec's repository name grammar (`<name>`). */
export const RepositoryName = z
  .string()
  .regex(
    /^[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(\/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*$/,
    'must be a repository name such as aceh-commerce',
  );

const Descriptor = z.object({
  mediaType: z.string(),
  digest: z.string(),
  size: z.number().int().nonnegative(),
});

const Platform = z.object({ architecture: z.string(), os: z.string(), variant: z.string().optional() });

/** An image manifest (OCI or Docker schema2): one config and its layers. */
export const ImageManifest = z.object({
  schemaVersion: z.literal(2),
  mediaType: z.string().optional(),
  config: Descriptor,
  layers: z.array(Descriptor),
});

/** An image index (OCI) or manifest list (Docker): one manifest per platform. */
export const ImageIndex = z.object({
  schemaVersion: z.literal(2),
  mediaType: z.string().optional(),
  manifests: z.array(Descriptor.extend({ platform: Platform.optional() })),
});

export const ManifestBody = z.union([ImageIndex, ImageManifest]);
export type ManifestBody = z.infer<typeof ManifestBody>;

/** The answer of a token service: `token`, or the OAuth2-compatible `access_token`. */
export const TokenResponse = z
  .object({
    token: z.string().min(1).optional(),
    access_token: z.string().min(1).optional(),
    expires_in: z.number().positive().optional(),
  })
  .refine((t) => t.token !== undefined || t.access_token !== undefined, {
    message: 'must carry token or access_token',
  });
export type TokenResponse = z.infer<typeof TokenResponse>;

export interface AuthChallenge {
  scheme: string;
  params: Record<string, string>;
}

/** Parses the first challenge of a `WWW-Authenticate` header: `Bearer realm="...",service="...",scope="..."`. */
export function parseAuthChallenge(header: string | null): AuthChallenge | undefined {
  if (!header) return undefined;
  const m = /^\s*([A-Za-z][A-Za-z0-9_-]*)\s*(.*)$/.exec(header);
  if (!m?.[1]) return undefined;
  const params: Record<string, string> = {};
  const re = /([A-Za-z][A-Za-z0-9_-]*)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]*))/g;
  for (let p = re.exec(m[2] ?? ''); p; p = re.exec(m[2] ?? '')) {
    const key = p[1]?.toLowerCase();
    if (key) params[key] = (p[2] ?? p[3] ?? '').replace(/\\(.)/g, '$1');
  }
  return { scheme: m[1].toLowerCase(), params };
}

/** The error codes of an error body (`{"errors":[{"code":"MANIFEST_UNKNOWN",...}]}`), for messages. */
export function errorCodes(text: string): string[] {
  try {
    const parsed = JSON.parse(text) as { errors?: { code?: unknown }[] };
    return (parsed.errors ?? []).map((e) => String(e.code)).slice(0, 5);
  } catch {
    return [];
  }
}
