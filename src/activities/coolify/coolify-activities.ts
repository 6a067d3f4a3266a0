/**
 * Coolify activities: deploy a Docker-image application at an image tag and follow the deployment to its
 * end (L2), and deploy the previous revision (R1). They speak the Coolify API v4 (`/api/v1`) through the
 * shared HttpClient, so every failure is classified by the one table.
 *
 * One fact of the server shapes all of it: for a Docker-image application (`build_pack: dockerimage`) a
 * deployment runs the image tag stored on the application (`docker_registry_image_tag`), whatever started
 * it; the `commit` of a rollback is used only by git build packs. So both deploying and rolling back first
 * pin the tag on the application, then queue the deployment.
 */
import { z } from 'zod';
import { FailureType, failure } from '../../errors';
import {
  cancellationSignal,
  heartbeat,
  idempotencyKey,
  lastHeartbeat,
  sleepCancellable,
  parseActivityInput,
} from '../activity-support';
import type { Fetch, HttpClientOptions } from '../http/http-client';
import { HttpClient } from '../http/http-client';
import type { CoolifyApplication, CoolifyDeployment } from './coolify-api';
import {
  CoolifyApplication as CoolifyApplicationSchema,
  CoolifyApplicationDeployments,
  CoolifyCancelResponse,
  CoolifyDeployResponse,
  CoolifyDeployment as CoolifyDeploymentSchema,
  CoolifyRollbackImages,
  CoolifyRollbackResponse,
  CoolifyUpdateResponse,
  IN_FLIGHT_STATUSES,
  isAtLeast,
  parseCoolifyVersion,
} from './coolify-api';

const ResourceUuid = z.string().regex(/^[A-Za-z0-9_-]{1,64}$/, 'must be a Coolify resource uuid');
/** The OCI distribution spec's tag grammar. */
const ImageTag = z
  .string()
  .regex(/^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$/, 'must be an image tag such as v1.2.0 or v1.2.0-rc1');

/** Input of `deployApplication`: the application and the image tag it must run. */
export const DeployApplicationInput = z.object({ applicationUuid: ResourceUuid, imageTag: ImageTag });
export type DeployApplicationInput = z.infer<typeof DeployApplicationInput>;

/** Result of `deployApplication`; `reused` when an earlier attempt of this activity had queued it. */
export const DeployApplicationResult = z.object({
  applicationUuid: z.string(),
  imageTag: z.string(),
  deploymentUuid: z.string(),
  reused: z.boolean(),
});
export type DeployApplicationResult = z.infer<typeof DeployApplicationResult>;

/** Input of `waitForDeployment`. */
export const WaitForDeploymentInput = z.object({ deploymentUuid: ResourceUuid });
export type WaitForDeploymentInput = z.infer<typeof WaitForDeploymentInput>;

/** Result of `waitForDeployment`: the deployment finished; `elapsedMs` counts from the first attempt. */
export const WaitForDeploymentResult = z.object({
  deploymentUuid: z.string(),
  status: z.literal('finished'),
  elapsedMs: z.number(),
  polls: z.number(),
  deploymentUrl: z.string().optional(),
});
export type WaitForDeploymentResult = z.infer<typeof WaitForDeploymentResult>;

/** Input of `deployPreviousRevision`: the application and the image tag it ran before (pinned by the workflow). */
export const DeployPreviousRevisionInput = z.object({
  applicationUuid: ResourceUuid,
  previousImageTag: ImageTag,
});
export type DeployPreviousRevisionInput = z.infer<typeof DeployPreviousRevisionInput>;

/** How the previous revision was deployed. */
export const RollbackMethod = z.enum(['rollback-endpoint', 'redeploy-pinned-tag']);
export type RollbackMethod = z.infer<typeof RollbackMethod>;

/** Result of `deployPreviousRevision`: the queued deployment, how, and why that way. */
export const DeployPreviousRevisionResult = z.object({
  applicationUuid: z.string(),
  imageTag: z.string(),
  deploymentUuid: z.string(),
  method: RollbackMethod,
  coolifyVersion: z.string(),
  reason: z.string(),
  reused: z.boolean(),
});
export type DeployPreviousRevisionResult = z.infer<typeof DeployPreviousRevisionResult>;

/** Input of `getApplicationStatus`. */
export const GetApplicationStatusInput = z.object({ applicationUuid: ResourceUuid });
export type GetApplicationStatusInput = z.infer<typeof GetApplicationStatusInput>;

/** An application as the workflows need it: `state`/`health` are the two halves of Coolify's `running:healthy`. */
export const ApplicationStatus = z.object({
  applicationUuid: z.string(),
  name: z.string(),
  status: z.string(),
  state: z.string(),
  health: z.string().nullable(),
  buildPack: z.string(),
  imageName: z.string().nullable(),
  imageTag: z.string().nullable(),
  fqdn: z.string().nullable(),
});
export type ApplicationStatus = z.infer<typeof ApplicationStatus>;

/** Input of `cancelDeployment`, the compensation of `deployApplication`/`deployPreviousRevision`. */
export const CancelDeploymentInput = z.object({ deploymentUuid: ResourceUuid });
export type CancelDeploymentInput = z.infer<typeof CancelDeploymentInput>;

/** Result of `cancelDeployment`: the status the deployment ended in; `alreadyEnded` when it had ended before. */
export const CancelDeploymentResult = z.object({
  deploymentUuid: z.string(),
  status: z.string(),
  alreadyEnded: z.boolean(),
});
export type CancelDeploymentResult = z.infer<typeof CancelDeploymentResult>;

/** What a triggering activity heartbeats once Coolify has queued its deployment; the next attempt reuses it. */
const TriggerHeartbeat = z.object({
  key: z.string(),
  applicationUuid: z.string(),
  imageTag: z.string(),
  deploymentUuid: z.string(),
  method: RollbackMethod.optional(),
  coolifyVersion: z.string().optional(),
  reason: z.string().optional(),
});
type TriggerHeartbeat = z.infer<typeof TriggerHeartbeat>;

/** What `waitForDeployment` heartbeats on every poll; the next attempt continues the clock and the count. */
export const WaitForDeploymentHeartbeat = z.object({
  deploymentUuid: z.string(),
  status: z.string(),
  startedAtMs: z.number(),
  elapsedMs: z.number(),
  polls: z.number(),
});
export type WaitForDeploymentHeartbeat = z.infer<typeof WaitForDeploymentHeartbeat>;

export interface CoolifyActivitiesOptions {
  /** The API base, as the document's `servers[0].url`: `https://coolify.example.com/api/v1`. */
  baseUrl: string;
  /** API token (Keys & Tokens); needs the `read`, `write` and `deploy` abilities. Resolved by the worker. */
  token: string;
  fetch?: Fetch;
  /** How often `waitForDeployment` polls; 5 s by default. */
  pollIntervalMs?: number;
  /** Per-request timeout; 30 s by default. */
  timeoutMs?: number;
}

export interface CoolifyActivities {
  deployApplication: (input: DeployApplicationInput) => Promise<DeployApplicationResult>;
  waitForDeployment: (input: WaitForDeploymentInput) => Promise<WaitForDeploymentResult>;
  deployPreviousRevision: (input: DeployPreviousRevisionInput) => Promise<DeployPreviousRevisionResult>;
  getApplicationStatus: (input: GetApplicationStatusInput) => Promise<ApplicationStatus>;
  cancelDeployment: (input: CancelDeploymentInput) => Promise<CancelDeploymentResult>;
}

const QUEUE_FULL_RETRY_MS = 60_000;

/**
 * Builds the Coolify activities over one instance and token.
 *
 * Idempotency (check-then-act; Coolify takes no client idempotency key on `/deploy` or `/rollback`):
 * - A triggering activity (`deployApplication`, `deployPreviousRevision`) heartbeats, as soon as Coolify has
 *   queued the deployment, the deployment uuid with its idempotency key (`<workflowId>/<activityId>`),
 *   application and tag. A retry that finds those details and the deployment returns it (`reused`) and
 *   queues nothing.
 * - Otherwise it reads before it writes: the application's pinned tag is changed only when it differs, and
 *   nothing is queued while another deployment of the application is queued or in progress (the retryable
 *   `UpstreamUnavailable` "busy" failure): Coolify itself would skip the request ("Deployment already queued
 *   for this commit.") and answer with a uuid it never stored, and a deployment we cannot prove is ours may
 *   be running another tag. That uuid is also confirmed with a GET before it is returned. Deploying a tag the
 *   application already runs is harmless, so the worst case of a lost heartbeat is one redundant deployment
 *   after the first has ended, never two at once.
 * - `waitForDeployment` only reads; it heartbeats `{deploymentUuid, status, startedAtMs, elapsedMs, polls}`
 *   every poll and a retry continues from those details. `getApplicationStatus` only reads.
 *   `cancelDeployment` treats "already ended" as done.
 *
 * Failures: `InvalidInput` (bad input, or an application that is not a Docker-image application),
 * `Unauthorized` (401/403, or Coolify refusing the deploy for the token's team role), `NotFound` (unknown
 * application or deployment), `RateLimited` (429, and a full deployment queue, after 60 s),
 * `UpstreamUnavailable` (5xx, network, busy application), `UpstreamRejected` (other 4xx),
 * `ContractViolation` (an answer that breaks coolify-api.ts), `OperationFailed` (the deployment failed or
 * was cancelled, with its status and log URL in the details). Cancellation of the activity cancels the
 * request or the wait (the Coolify deployment keeps running: cancelling it is `cancelDeployment`'s job).
 */
export function createCoolifyActivities(options: CoolifyActivitiesOptions): CoolifyActivities {
  const baseUrl = options.baseUrl.replace(/\/+$/, '');
  const origin = new URL(baseUrl).origin;
  const pollIntervalMs = options.pollIntervalMs ?? 5_000;
  const clientOptions: HttpClientOptions = {
    system: 'Coolify',
    baseUrl,
    headers: { authorization: `Bearer ${options.token}` },
    fetch: options.fetch,
    timeoutMs: options.timeoutMs,
  };
  const http = new HttpClient(clientOptions);
  const seg = encodeURIComponent;

  async function getApplication(uuid: string, signal: AbortSignal): Promise<CoolifyApplication> {
    const res = await http.request({
      path: `/applications/${seg(uuid)}`,
      schema: CoolifyApplicationSchema,
      signal,
    });
    return res.body;
  }

  async function findDeployment(uuid: string, signal: AbortSignal): Promise<CoolifyDeployment | undefined> {
    const res = await http.request({
      path: `/deployments/${seg(uuid)}`,
      schema: CoolifyDeploymentSchema,
      signal,
      acceptStatuses: [404],
    });
    return res.status === 404 ? undefined : res.body;
  }

  function deploymentUrl(d: CoolifyDeployment): string | undefined {
    if (!d.deployment_url) return undefined;
    return /^https?:\/\//.test(d.deployment_url) ? d.deployment_url : origin + d.deployment_url;
  }

  function requireDockerImage(app: CoolifyApplication, activity: string): void {
    if (app.build_pack === 'dockerimage') return;
    throw failure(
      FailureType.InvalidInput,
      `${activity}: Coolify application ${app.name} (${app.uuid}) is a ${app.build_pack} application; ` +
        'only Docker-image applications (build pack dockerimage) are deployed by image tag',
      { details: { applicationUuid: app.uuid, buildPack: app.build_pack } },
    );
  }

  /** Refuses to queue while another deployment of the application is queued or running. */
  async function requireIdle(app: CoolifyApplication, signal: AbortSignal): Promise<void> {
    const res = await http.request({
      path: `/deployments/applications/${seg(app.uuid)}`,
      query: { skip: 0, take: 20 },
      schema: CoolifyApplicationDeployments,
      signal,
    });
    const busy = res.body.deployments.find((d) => IN_FLIGHT_STATUSES.includes(d.status));
    if (!busy) return;
    throw failure(
      FailureType.UpstreamUnavailable,
      `Coolify application ${app.name} (${app.uuid}) is busy with deployment ${busy.deployment_uuid} ` +
        `(${busy.status}); will retry once it has ended`,
      {
        details: { applicationUuid: app.uuid, deploymentUuid: busy.deployment_uuid, status: busy.status },
      },
    );
  }

  /** Pins the image tag the next deployment runs; a no-op when it is already pinned. */
  async function pinImageTag(app: CoolifyApplication, imageTag: string, signal: AbortSignal): Promise<void> {
    if (app.docker_registry_image_tag === imageTag) return;
    await http.request({
      method: 'PATCH',
      path: `/applications/${seg(app.uuid)}`,
      body: { docker_registry_image_tag: imageTag },
      schema: CoolifyUpdateResponse,
      signal,
    });
  }

  async function queueDeploy(app: CoolifyApplication, signal: AbortSignal): Promise<string> {
    const res = await http.request({
      method: 'POST',
      path: '/deploy',
      query: { uuid: app.uuid },
      schema: CoolifyDeployResponse,
      signal,
    });
    const entry = res.body.deployments.find((d) => d.resource_uuid === app.uuid) ?? res.body.deployments[0];
    const said = entry?.message?.slice(0, 300) ?? 'no deployment in the answer';
    const details = { applicationUuid: app.uuid, message: said };
    if (!entry?.deployment_uuid) {
      if (/unauthori[sz]ed/i.test(said)) {
        throw failure(
          FailureType.Unauthorized,
          `Coolify refused to deploy application ${app.name}: ${said}; the token's user needs a team role that may deploy`,
          { details },
        );
      }
      throw failure(FailureType.UpstreamRejected, `Coolify did not deploy application ${app.name}: ${said}`, {
        details,
      });
    }
    // A skipped request ("Deployment already queued for this commit.") comes back with a fresh uuid that was
    // never stored: only a uuid Coolify can show us is a deployment.
    if (!(await findDeployment(entry.deployment_uuid, signal))) {
      throw failure(
        FailureType.UpstreamUnavailable,
        `Coolify did not queue a deployment of application ${app.name} (${said}); another deployment is in flight, will retry`,
        { details },
      );
    }
    return entry.deployment_uuid;
  }

  async function queueRollback(
    app: CoolifyApplication,
    imageTag: string,
    signal: AbortSignal,
  ): Promise<string> {
    let res;
    try {
      res = await http.request({
        method: 'POST',
        path: `/applications/${seg(app.uuid)}/rollback`,
        body: { commit: imageTag },
        schema: CoolifyRollbackResponse,
        signal,
      });
    } catch (err) {
      // The rollback route answers a full deployment queue with 400, not /deploy's 429.
      const f = err as { type?: unknown; message?: unknown };
      if (f.type === FailureType.UpstreamRejected && /queue is full/i.test(String(f.message))) {
        throw failure(
          FailureType.RateLimited,
          `Coolify's deployment queue is full; the rollback of ${app.name} will be retried`,
          { details: { applicationUuid: app.uuid }, nextRetryDelayMs: QUEUE_FULL_RETRY_MS },
        );
      }
      throw err;
    }
    if (!res.body.deployment_uuid) {
      throw failure(
        FailureType.UpstreamUnavailable,
        `Coolify did not queue the rollback of ${app.name} (${res.body.message?.slice(0, 300) ?? 'no message'}); will retry`,
        { details: { applicationUuid: app.uuid } },
      );
    }
    return res.body.deployment_uuid;
  }

  /** `GET /version` answers text/html (`4.3.10`), which the JSON client does not return: keep a copy. */
  async function coolifyVersion(signal: AbortSignal): Promise<string> {
    const baseFetch = options.fetch ?? fetch;
    let copy: Response | undefined;
    const client = new HttpClient({
      ...clientOptions,
      fetch: async (input, init) => {
        const response = await baseFetch(input, init);
        copy = response.clone();
        return response;
      },
    });
    await client.request({ path: '/version', signal });
    return ((await copy?.text()) ?? '').trim().slice(0, 60);
  }

  /** The deployment a previous attempt of this activity queued for the same application and tag, if any. */
  async function resumed(
    key: string,
    applicationUuid: string,
    imageTag: string,
    signal: AbortSignal,
  ): Promise<TriggerHeartbeat | undefined> {
    const previous = TriggerHeartbeat.safeParse(lastHeartbeat());
    if (!previous.success) return undefined;
    const p = previous.data;
    if (p.key !== key || p.applicationUuid !== applicationUuid || p.imageTag !== imageTag) return undefined;
    if (!(await findDeployment(p.deploymentUuid, signal))) return undefined;
    heartbeat(p);
    return p;
  }

  return {
    async deployApplication(raw) {
      const input = parseActivityInput(DeployApplicationInput, raw, 'deployApplication');
      const signal = cancellationSignal();
      const key = idempotencyKey();
      const earlier = await resumed(key, input.applicationUuid, input.imageTag, signal);
      if (earlier) return { ...input, deploymentUuid: earlier.deploymentUuid, reused: true };

      const app = await getApplication(input.applicationUuid, signal);
      requireDockerImage(app, 'deployApplication');
      await requireIdle(app, signal);
      await pinImageTag(app, input.imageTag, signal);
      const deploymentUuid = await queueDeploy(app, signal);
      heartbeat({ key, ...input, deploymentUuid } satisfies TriggerHeartbeat);
      return { ...input, deploymentUuid, reused: false };
    },

    async waitForDeployment(raw) {
      const input = parseActivityInput(WaitForDeploymentInput, raw, 'waitForDeployment');
      const signal = cancellationSignal();
      const previous = WaitForDeploymentHeartbeat.safeParse(lastHeartbeat());
      const resume =
        previous.success && previous.data.deploymentUuid === input.deploymentUuid ? previous.data : undefined;
      const startedAtMs = resume?.startedAtMs ?? Date.now();
      let polls = resume?.polls ?? 0;
      for (;;) {
        const res = await http.request({
          path: `/deployments/${seg(input.deploymentUuid)}`,
          schema: CoolifyDeploymentSchema,
          signal,
        });
        const d = res.body;
        polls += 1;
        const elapsedMs = Date.now() - startedAtMs;
        const url = deploymentUrl(d);
        if (d.status === 'finished') {
          return {
            deploymentUuid: input.deploymentUuid,
            status: 'finished',
            elapsedMs,
            polls,
            deploymentUrl: url,
          };
        }
        if (d.status === 'failed' || d.status === 'cancelled-by-user') {
          const what = d.status === 'failed' ? 'failed' : 'was cancelled by a user';
          throw failure(
            FailureType.OperationFailed,
            `Coolify deployment ${input.deploymentUuid} ${what} after ${Math.round(elapsedMs / 1000)} s; ` +
              `read its log at ${url ?? 'the Coolify UI'} and deploy again or roll back`,
            {
              details: {
                deploymentUuid: input.deploymentUuid,
                status: d.status,
                deploymentUrl: url,
                elapsedMs,
                rollback: d.rollback ?? false,
              },
            },
          );
        }
        heartbeat({
          deploymentUuid: input.deploymentUuid,
          status: d.status,
          startedAtMs,
          elapsedMs,
          polls,
        } satisfies WaitForDeploymentHeartbeat);
        await sleepCancellable(pollIntervalMs);
      }
    },

    async deployPreviousRevision(raw) {
      const input = parseActivityInput(DeployPreviousRevisionInput, raw, 'deployPreviousRevision');
      const signal = cancellationSignal();
      const key = idempotencyKey();
      const imageTag = input.previousImageTag;
      const earlier = await resumed(key, input.applicationUuid, imageTag, signal);
      if (earlier?.method) {
        return {
          applicationUuid: input.applicationUuid,
          imageTag,
          deploymentUuid: earlier.deploymentUuid,
          method: earlier.method,
          coolifyVersion: earlier.coolifyVersion ?? 'unknown',
          reason: earlier.reason ?? '',
          reused: true,
        };
      }

      const app = await getApplication(input.applicationUuid, signal);
      requireDockerImage(app, 'deployPreviousRevision');
      await requireIdle(app, signal);
      const versionText = await coolifyVersion(signal);
      const version = parseCoolifyVersion(versionText);
      let method: RollbackMethod = 'redeploy-pinned-tag';
      let reason: string;
      if (!version) {
        reason = `Coolify reported a version it does not recognise ("${versionText}"): redeploying the pinned tag works on every version`;
      } else if (!isAtLeast(version, 4, 3, 0)) {
        reason = `Coolify ${version.raw} has no rollback endpoint (it came in 4.3.0): redeploying the pinned tag`;
      } else {
        const images = await http.request({
          path: `/applications/${seg(app.uuid)}/rollback-images`,
          schema: CoolifyRollbackImages,
          signal,
        });
        if (images.body.images.some((i) => i.tag === imageTag)) {
          method = 'rollback-endpoint';
          reason = `Coolify ${version.raw} still has image tag ${imageTag} on the server: rollback endpoint`;
        } else if (images.body.images.length === 0) {
          reason = `Coolify ${version.raw} lists no rollback images (the server cannot be inspected): redeploying the pinned tag from the registry`;
        } else {
          reason = `image tag ${imageTag} is no longer on the server: redeploying the pinned tag from the registry`;
        }
      }
      await pinImageTag(app, imageTag, signal);
      const deploymentUuid =
        method === 'rollback-endpoint'
          ? await queueRollback(app, imageTag, signal)
          : await queueDeploy(app, signal);
      const coolifyVersionText = version?.raw ?? versionText;
      heartbeat({
        key,
        applicationUuid: app.uuid,
        imageTag,
        deploymentUuid,
        method,
        coolifyVersion: coolifyVersionText,
        reason,
      } satisfies TriggerHeartbeat);
      return {
        applicationUuid: app.uuid,
        imageTag,
        deploymentUuid,
        method,
        coolifyVersion: coolifyVersionText,
        reason,
        reused: false,
      };
    },

    async getApplicationStatus(raw) {
      const input = parseActivityInput(GetApplicationStatusInput, raw, 'getApplicationStatus');
      const app = await getApplication(input.applicationUuid, cancellationSignal());
      const [state = app.status, health] = app.status.split(':');
      return {
        applicationUuid: app.uuid,
        name: app.name,
        status: app.status,
        state,
        health: health ?? null,
        buildPack: app.build_pack,
        imageName: app.docker_registry_image_name ?? null,
        imageTag: app.docker_registry_image_tag ?? null,
        fqdn: app.fqdn ?? null,
      };
    },

    async cancelDeployment(raw) {
      const input = parseActivityInput(CancelDeploymentInput, raw, 'cancelDeployment');
      const signal = cancellationSignal();
      const res = await http.request({
        method: 'POST',
        path: `/deployments/${seg(input.deploymentUuid)}/cancel`,
        schema: CoolifyCancelResponse,
        signal,
        acceptStatuses: [400],
      });
      if (res.status !== 400) {
        return {
          deploymentUuid: input.deploymentUuid,
          status: res.body.status ?? 'cancelled-by-user',
          alreadyEnded: false,
        };
      }
      // 400: the deployment had already ended; report how.
      const d = await findDeployment(input.deploymentUuid, signal);
      if (!d) {
        throw failure(FailureType.NotFound, `Coolify deployment ${input.deploymentUuid} does not exist`, {
          details: { deploymentUuid: input.deploymentUuid },
        });
      }
      return { deploymentUuid: input.deploymentUuid, status: d.status, alreadyEnded: true };
    },
  };
}
