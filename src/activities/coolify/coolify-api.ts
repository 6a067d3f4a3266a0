/**
 * The part of the Coolify API (v4, `/api/v1`) the activities use, as it is on the wire: the official
 * OpenAPI description (`coolify/openapi.json`, tag v4.3.10) and, where the description and the server
 * disagree, the server's controllers (`app/Http/Controllers/Api`), which win.
 *
 * Deliberate differences from the document, each for a reason:
 * - Objects are not closed and only the fields the activities read are required, so a newer Coolify that
 *   adds fields does not stop a release.
 * - `Application.build_pack` is a string, not the document's enum: the server also has `dockerimage`
 *   (the build pack of every Docker-image application), which the enum lacks.
 * - `GET /deployments/applications/{uuid}` answers `{count, deployments: [ApplicationDeploymentQueue]}`; the
 *   document says "array of Application".
 * - A deployment's `status` is a plain string in the document; the server's enum
 *   (`app/Enums/ApplicationDeploymentStatus.php`) is closed, so anything else is a contract violation.
 */
import { z } from 'zod';

/** `ApplicationDeploymentStatus`; the last three are terminal. */
export const DeploymentStatus = z.enum(['queued', 'in_progress', 'finished', 'failed', 'cancelled-by-user']);
export type DeploymentStatus = z.infer<typeof DeploymentStatus>;

export const IN_FLIGHT_STATUSES: readonly DeploymentStatus[] = ['queued', 'in_progress'];

/** The fields of `Application` the activities read. */
export const CoolifyApplication = z.object({
  uuid: z.string(),
  name: z.string(),
  build_pack: z.string(),
  docker_registry_image_name: z.string().nullable().optional(),
  docker_registry_image_tag: z.string().nullable().optional(),
  /** `running:healthy`, `exited:unhealthy`, `restarting`, ... */
  status: z.string(),
  fqdn: z.string().nullable().optional(),
});
export type CoolifyApplication = z.infer<typeof CoolifyApplication>;

/** `ApplicationDeploymentQueue` (one deployment). */
export const CoolifyDeployment = z.object({
  deployment_uuid: z.string(),
  status: DeploymentStatus,
  application_id: z.union([z.string(), z.number()]).optional(),
  commit: z.string().nullable().optional(),
  rollback: z.boolean().optional(),
  is_api: z.boolean().optional(),
  force_rebuild: z.boolean().optional(),
  deployment_url: z.string().nullable().optional(),
  created_at: z.string().optional(),
  updated_at: z.string().optional(),
});
export type CoolifyDeployment = z.infer<typeof CoolifyDeployment>;

/** `GET /deployments/applications/{uuid}` as the server sends it (see the module comment). */
export const CoolifyApplicationDeployments = z.object({
  count: z.number().int().nonnegative(),
  deployments: z.array(CoolifyDeployment),
});
export type CoolifyApplicationDeployments = z.infer<typeof CoolifyApplicationDeployments>;

/**
 * `POST /deploy` (`deploy-by-tag-or-uuid`). `deployment_uuid` is absent for services and databases and when
 * the server refused one application (the refusal is then only in `message`, with status 200).
 */
export const CoolifyDeployResponse = z.object({
  deployments: z.array(
    z.object({
      message: z.string().optional(),
      resource_uuid: z.string().optional(),
      deployment_uuid: z.string().optional(),
    }),
  ),
});
export type CoolifyDeployResponse = z.infer<typeof CoolifyDeployResponse>;

/** `PATCH /applications/{uuid}` (`update-application-by-uuid`). */
export const CoolifyUpdateResponse = z.object({ uuid: z.string() });

/** `GET /applications/{uuid}/rollback-images` (Coolify >= 4.3.0). Empty when the server cannot be inspected. */
export const CoolifyRollbackImages = z.object({
  current: z.string().nullable(),
  images: z.array(
    z.object({
      tag: z.string().nullable(),
      created_at: z.string().nullable().optional(),
      is_current: z.boolean().optional(),
    }),
  ),
});
export type CoolifyRollbackImages = z.infer<typeof CoolifyRollbackImages>;

/** `POST /applications/{uuid}/rollback` (Coolify >= 4.3.0); without `deployment_uuid` nothing was queued. */
export const CoolifyRollbackResponse = z.object({
  message: z.string().optional(),
  deployment_uuid: z.string().optional(),
});

/** `POST /deployments/{uuid}/cancel`. */
export const CoolifyCancelResponse = z.object({
  message: z.string().optional(),
  deployment_uuid: z.string().optional(),
  status: z.string().optional(),
});

/** A Coolify version as `GET /version` reports it: `4.3.10`, `v4.0.0`, `4.0.0-beta.400`. */
export interface CoolifyVersion {
  major: number;
  minor: number;
  patch: number;
  /** `beta.400` for pre-releases, which sort before the release. */
  prerelease?: string;
  raw: string;
}

export function parseCoolifyVersion(text: string): CoolifyVersion | undefined {
  const raw = text.trim().replace(/^"|"$/g, '');
  const m = /^v?(\d+)\.(\d+)\.(\d+)(?:-([0-9A-Za-z.-]+))?$/.exec(raw);
  if (!m) return undefined;
  return { major: Number(m[1]), minor: Number(m[2]), patch: Number(m[3]), prerelease: m[4], raw };
}

/** True when `v` is at least `major.minor.patch` (a pre-release of that version is not). */
export function isAtLeast(v: CoolifyVersion, major: number, minor: number, patch: number): boolean {
  const a = [v.major, v.minor, v.patch];
  const b = [major, minor, patch];
  for (let i = 0; i < 3; i++) {
    const x = a[i] ?? 0;
    const y = b[i] ?? 0;
    if (x !== y) return x > y;
  }
  return v.prerelease === undefined;
}
