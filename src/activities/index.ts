/**
 * Builds every activity the worker registers, from the platform configuration. One folder per external
 * system; this module only wires configuration and credentials to their factories.
 *
 * Credentials are resolved lazily: a system's factory is built on the first call of one of its activities,
 * resolving that system's credential references at that moment, and is then reused. The worker therefore
 * starts with credentials missing; an activity whose credential is missing fails with a non-retryable
 * `Unauthorized` naming the reference (never a value), and a later call tries again (a secret mounted in
 * the meantime is picked up).
 */
import path from 'node:path';
import { ApplicationFailure } from '@temporalio/common';
import {
  CredentialError,
  SecretRedactor,
  describeCredentialRef,
  resolveCredential,
  type CredentialRef,
  type CredentialSources,
} from '../config/credential-ref';
import type { Client } from '@temporalio/client';
import type { PlatformConfig } from '../config/platform-config';
import { FailureType, failure } from '../errors';
import { createCdnActivities } from './cdn/cdn-activities';
import { createCiActivities } from './ci/ci-activities';
import { createCoolifyActivities } from './coolify/coolify-activities';
import { createGitActivities } from './git/git-activities';
import { createGrafanaActivities } from './grafana/grafana-activities';
import { createLokiActivities } from './loki/loki-activities';
import { createPostgresActivities } from './postgres';
import { createPrometheusActivities } from './prometheus/prometheus-activities';
import { createProxmoxActivities } from './proxmox/proxmox-activities';
import { createQaActivities } from './qa/qa-activities';
import { createRegistryActivities } from './registry/registry-activities';
import { createReleaseActivities, type ReleaseActivities } from './release/release-activities';
import { createS3Activities } from './s3/s3-activities';
import { createSmokeActivities } from './smoke/smoke-activities';
import { createTelegramActivities } from './telegram/telegram-activities';
import { createCloudflareDnsTrafficActivities } from './traffic/dns-cloudflare';
import { createHaproxyTrafficActivities } from './traffic/haproxy-runtime';
import { createTraefikFileTrafficActivities } from './traffic/traefik-file';
import type { TrafficProvider } from './traffic/traffic-provider';
import { createReleaseLookupActivities, type ReleaseLookupActivities } from './temporal/release-lookup';
import { createTemporalActivities, type TemporalActivities } from './temporal/temporal-activities';
import type { CdnActivities } from './cdn/cdn-activities';
import type { CiActivities } from './ci/ci-activities';
import type { CoolifyActivities } from './coolify/coolify-activities';
import type { GitActivities } from './git/git-activities';
import type { GrafanaActivities } from './grafana/grafana-activities';
import type { LokiActivities } from './loki/loki-activities';
import type { PostgresActivities } from './postgres';
import type { PrometheusActivities } from './prometheus/prometheus-activities';
import type { ProxmoxActivities } from './proxmox/proxmox-activities';
import type { QaActivities } from './qa/qa-activities';
import type { RegistryActivities } from './registry/registry-activities';
import type { S3Activities } from './s3/s3-activities';
import type { SmokeActivities } from './smoke/smoke-activities';
import type { TelegramActivities } from './telegram/telegram-activities';

/**
 * The parts of the platform configuration the activities need. Every `systems` section may be absent: a
 * system left out contributes no activities. A parsed {@link PlatformConfig} is one.
 */
export type ActivitiesConfig = Pick<PlatformConfig, 'monitoring' | 'backups' | 'database'> & {
  systems: Partial<PlatformConfig['systems']>;
};

/** Settings of the worker's own machine, not of the platform; each has a default. */
export interface WorkerLocalSettings {
  /** Where the git activities keep their repository; `var/git` (relative to the working directory). */
  gitDir?: string;
  /** Where database snapshots are written and restored from; `var/snapshots`. */
  snapshotDir?: string;
  /**
   * The git remote tags are pushed to, instead of the one derived from `systems.git` (a local bare
   * repository in the sandbox of `npm start`).
   */
  gitRemote?: string;
  /** `pg_dump` and `pg_restore`; found on the PATH by default. */
  pgDumpPath?: string;
  pgRestorePath?: string;
}

export interface ActivityDependencies {
  config: ActivitiesConfig;
  /** Where credential references are resolved: environment variables and mounted files. */
  credentials: CredentialSources;
  /** Where diagnostic lines go; credentials never do. */
  log: (message: string) => void;
  /** For the HTTP systems; the global `fetch` by default. */
  fetch?: typeof fetch;
  local?: WorkerLocalSettings;
  /**
   * The Temporal client of the worker's cluster, for the environment lock and the rollback's release
   * lookup. Without it those activities are not registered.
   */
  temporal?: { client: Client; taskQueue: string };
}

/** Whether `config` is a whole platform configuration (the release activities need all of it). */
function isPlatformConfig(config: ActivitiesConfig): config is PlatformConfig {
  return 'release' in config && 'approval' in config && 'environments' in config;
}

type AnyActivity = (...args: never[]) => Promise<unknown>;
type ActivityNames<T> = { [K in keyof T]: true };

/**
 * Wraps a factory so that it is built on the first call of one of its activities and then reused. `names`
 * lists every activity of the factory (the type checker insists on all of them and no others), so the
 * registration is known before anything is built.
 */
function lazySystem<T extends Record<keyof T, AnyActivity>>(
  system: string,
  names: NoInfer<ActivityNames<T>>,
  build: (secret: (ref: CredentialRef) => string) => T,
  deps: ActivityDependencies,
): T {
  let built: T | undefined;
  const instance = (): T => {
    if (built) return built;
    const redactor = new SecretRedactor();
    const secret = (ref: CredentialRef): string => {
      try {
        return redactor.add(resolveCredential(ref, deps.credentials));
      } catch (err) {
        if (err instanceof CredentialError) {
          throw failure(FailureType.Unauthorized, `${system}: ${err.message}`, {
            details: { system, reference: describeCredentialRef(ref) },
          });
        }
        throw err;
      }
    };
    try {
      built = build(secret);
    } catch (err) {
      if (err instanceof ApplicationFailure) throw err;
      const reason = redactor.redact(err instanceof Error ? err.message : String(err));
      throw failure(
        FailureType.InvalidInput,
        `${system} activities cannot be built from the configuration: ${reason}`,
        { details: { system } },
      );
    }
    deps.log(`aceh-release: ${system} activities ready`);
    return built;
  };
  const activities: Record<string, AnyActivity> = {};
  for (const name of Object.keys(names)) {
    activities[name] = (...args: unknown[]) => {
      const fn = instance()[name as keyof T] as unknown as (...a: unknown[]) => Promise<unknown>;
      return fn(...args);
    };
  }
  return activities as unknown as T;
}

/** `https://api.github.com` -> `github.com`; a GitHub Enterprise `https://ghe/api/v3` -> `ghe`. */
function gitHost(apiUrl: string): string {
  const host = new URL(apiUrl).host;
  return host === 'api.github.com' ? 'github.com' : host;
}

/**
 * Every activity the worker registers, as one flat object for `Worker.create({ activities })`. Names, by
 * system (a system absent from the configuration contributes none):
 *
 * - coolify: `deployApplication`, `waitForDeployment`, `deployPreviousRevision`, `getApplicationStatus`,
 *   `cancelDeployment`
 * - registry: `resolveImageDigest`, `checkDigestExists`
 * - ci (`workflows.build`): `triggerBuild`, `waitForBuild`; ci (`workflows.smokeTest`), prefixed because the
 *   same factory is built twice: `triggerSmokeTest`, `waitForSmokeTest`
 * - postgres: `applyMigrations`, `appendAuditRecord`, `appendAuditRecords`, `takeSnapshot`, `restoreSnapshot`
 * - objectStorage (S3/MinIO, bucket `backups.bucket`): `uploadFile`, `copyObject`, `listObjects`,
 *   `deleteObjects`
 * - proxmox (node `backups.deploymentSnapshot.node`): `snapshotVm`, `convertToTemplate`, `cloneVm`,
 *   `deleteVm`, `waitForTask`
 * - git: `createTag`, `verifyTag`, `listCommitsBetween`
 * - smoke (only the executable of `monitoring.smokeTest.command` may run): `checkEndpoints`, `runCommand`
 * - qa (always): `summarizeQaReport`
 * - prometheus: `queryInstant`, `queryRange`, `sampleErrorRate`, `sampleLatency`
 * - loki: `countErrors`, `errorLines`
 * - grafana: `annotate`
 * - telegram: `sendMessage`
 * - cdn: `purgeCache`
 * - traffic (the provider `systems.traffic.provider` names): `switchTraffic`, `setCanaryWeights`,
 *   `mirrorTraffic`, `stopMirroring`, `getTrafficState`, `restoreTrafficState`
 *
 * Idempotency and failures are each activity's own (see its factory). Wiring adds two failures, both
 * non-retryable and raised on the first call of a system's activity: `Unauthorized` when one of its
 * credential references cannot be resolved (the message names the reference), `InvalidInput` when the
 * factory refuses its settings. Neither is cached: the next call tries again.
 */
export function createActivities(deps: ActivityDependencies) {
  const { systems, monitoring, backups, database } = deps.config;
  const local = deps.local ?? {};
  const f = deps.fetch ? { fetch: deps.fetch } : {};

  const coolify = systems.coolify;
  const registry = systems.registry;
  const ci = systems.ci;
  const pg = systems.postgres;
  const s3 = systems.objectStorage;
  const proxmox = systems.proxmox;
  const git = systems.git;
  const prometheus = systems.prometheus;
  const loki = systems.loki;
  const grafana = systems.grafana;
  const telegram = systems.telegram;
  const cdn = systems.cdn;
  const traffic = systems.traffic;

  const ciFor = (system: string, workflowFile: string) =>
    ci
      ? lazySystem(
          system,
          { triggerBuild: true, waitForBuild: true },
          (secret) => {
            const [owner = '', repo = ''] = (git?.repository ?? '').split('/');
            return createCiActivities({
              apiBaseUrl: ci.apiUrl,
              owner,
              repo,
              workflowFile,
              token: secret(ci.token),
              ...f,
            });
          },
          deps,
        )
      : undefined;
  const ciBuild = ci ? ciFor('ci', ci.workflows.build) : undefined;
  const ciSmoke = ci ? ciFor('ci smoke test', ci.workflows.smokeTest) : undefined;

  const trafficActivities = (): TrafficProvider | undefined => {
    if (!traffic) return undefined;
    const names: ActivityNames<TrafficProvider> = {
      switchTraffic: true,
      setCanaryWeights: true,
      mirrorTraffic: true,
      stopMirroring: true,
      getTrafficState: true,
      restoreTrafficState: true,
    };
    const system = `traffic (${traffic.provider})`;
    switch (traffic.provider) {
      case 'haproxy':
        return lazySystem<TrafficProvider>(
          system,
          names,
          () =>
            createHaproxyTrafficActivities({
              socket: traffic.socket,
              ...(traffic.services ? { services: traffic.services } : {}),
            }),
          deps,
        );
      case 'traefik':
        return lazySystem<TrafficProvider>(
          system,
          names,
          () =>
            createTraefikFileTrafficActivities({
              filePath: traffic.file,
              ...(traffic.services ? { services: traffic.services } : {}),
            }),
          deps,
        );
      case 'cloudflare-dns':
        return lazySystem<TrafficProvider>(
          system,
          names,
          (secret) =>
            createCloudflareDnsTrafficActivities({
              baseUrl: traffic.apiUrl,
              zoneId: traffic.zoneId,
              token: secret(traffic.token),
              services: traffic.services,
              ...f,
            }),
          deps,
        );
    }
  };

  return {
    ...(coolify &&
      lazySystem(
        'coolify',
        {
          deployApplication: true,
          waitForDeployment: true,
          deployPreviousRevision: true,
          getApplicationStatus: true,
          cancelDeployment: true,
        },
        (secret) => createCoolifyActivities({ baseUrl: coolify.url, token: secret(coolify.token), ...f }),
        deps,
      )),
    ...(registry &&
      lazySystem(
        'registry',
        { resolveImageDigest: true, checkDigestExists: true },
        (secret) =>
          createRegistryActivities({
            baseUrl: registry.url,
            repository: registry.repository,
            ...(registry.username ? { username: registry.username } : {}),
            ...(registry.password ? { password: secret(registry.password) } : {}),
            ...f,
          }),
        deps,
      )),
    ...ciBuild,
    ...(ciSmoke && { triggerSmokeTest: ciSmoke.triggerBuild, waitForSmokeTest: ciSmoke.waitForBuild }),
    ...(pg &&
      lazySystem(
        'postgres',
        {
          applyMigrations: true,
          appendAuditRecord: true,
          appendAuditRecords: true,
          takeSnapshot: true,
          restoreSnapshot: true,
        },
        (secret) =>
          createPostgresActivities({
            connection: {
              host: pg.host,
              port: pg.port,
              database: pg.database,
              user: pg.user,
              password: secret(pg.password),
              // The driver knows no verify-ca; verify-full checks the CA and the host name too.
              sslMode: pg.sslMode === 'verify-ca' ? 'verify-full' : pg.sslMode,
            },
            migrationsDir: database.migrations,
            pgDumpPath: local.pgDumpPath ?? 'pg_dump',
            pgRestorePath: local.pgRestorePath ?? 'pg_restore',
            snapshotDir: local.snapshotDir ?? path.resolve('var', 'snapshots'),
            log: deps.log,
          }),
        deps,
      )),
    ...(s3 &&
      lazySystem(
        'objectStorage',
        { uploadFile: true, copyObject: true, listObjects: true, deleteObjects: true },
        (secret) =>
          createS3Activities({
            endpoint: s3.endpoint,
            region: s3.region,
            forcePathStyle: s3.forcePathStyle,
            bucket: backups.bucket,
            accessKeyId: secret(s3.accessKeyId),
            secretAccessKey: secret(s3.secretAccessKey),
          }),
        deps,
      )),
    ...(proxmox &&
      lazySystem(
        'proxmox',
        { snapshotVm: true, convertToTemplate: true, cloneVm: true, deleteVm: true, waitForTask: true },
        (secret) =>
          createProxmoxActivities({
            baseUrl: proxmox.url,
            tokenId: proxmox.tokenId,
            tokenSecret: secret(proxmox.tokenSecret),
            node: backups.deploymentSnapshot.node,
            ...f,
          }),
        deps,
      )),
    ...(git &&
      lazySystem(
        'git',
        { createTag: true, verifyTag: true, listCommitsBetween: true },
        (secret) => {
          const token = secret(git.token);
          return createGitActivities({
            repoDir: path.resolve(local.gitDir ?? path.join('var', 'git'), `${git.repository}.git`),
            remote:
              local.gitRemote ??
              `https://x-access-token:${encodeURIComponent(token)}@${gitHost(git.apiUrl)}/${git.repository}.git`,
            secrets: [token, encodeURIComponent(token)],
          });
        },
        deps,
      )),
    ...lazySystem(
      'smoke',
      { checkEndpoints: true, runCommand: true },
      () =>
        createSmokeActivities({
          allowedExecutables: monitoring.smokeTest.command.trim().split(/\s+/).slice(0, 1),
          ...f,
        }),
      deps,
    ),
    ...lazySystem('qa', { summarizeQaReport: true }, () => createQaActivities(), deps),
    ...(prometheus &&
      lazySystem(
        'prometheus',
        { queryInstant: true, queryRange: true, sampleErrorRate: true, sampleLatency: true },
        (secret) =>
          createPrometheusActivities({
            baseUrl: prometheus.url,
            ...(prometheus.token ? { bearerToken: secret(prometheus.token) } : {}),
            ...f,
          }),
        deps,
      )),
    ...(loki &&
      lazySystem(
        'loki',
        { countErrors: true, errorLines: true },
        (secret) =>
          createLokiActivities({
            baseUrl: loki.url,
            ...(loki.tenant ? { tenantId: loki.tenant } : {}),
            ...(loki.token ? { bearerToken: secret(loki.token) } : {}),
            ...f,
          }),
        deps,
      )),
    ...(grafana &&
      lazySystem(
        'grafana',
        { annotate: true },
        (secret) =>
          createGrafanaActivities({
            baseUrl: grafana.url,
            token: secret(grafana.token),
            ...(grafana.orgId !== undefined ? { orgId: grafana.orgId } : {}),
            ...f,
          }),
        deps,
      )),
    ...(telegram &&
      lazySystem(
        'telegram',
        { sendMessage: true },
        (secret) =>
          createTelegramActivities({
            baseUrl: telegram.apiUrl,
            botToken: secret(telegram.botToken),
            chatId: telegram.chatId,
            ...(telegram.messageThreadId !== undefined ? { messageThreadId: telegram.messageThreadId } : {}),
            ...f,
          }),
        deps,
      )),
    ...(cdn &&
      lazySystem(
        'cdn',
        { purgeCache: true },
        (secret) =>
          createCdnActivities({ baseUrl: cdn.apiUrl, zoneId: cdn.zoneId, apiToken: secret(cdn.token), ...f }),
        deps,
      )),
    ...trafficActivities(),
    ...(isPlatformConfig(deps.config) && createReleaseActivities({ config: deps.config })),
    ...(deps.temporal && createTemporalActivities(deps.temporal)),
    ...(deps.temporal && createReleaseLookupActivities({ client: deps.temporal.client })),
  };
}

/**
 * Every activity a workflow may call, by name and signature; what `proxyActivities` is typed with. A worker
 * registers those of its configured systems (`createActivities`); calling one it lacks fails the activity
 * with a "not registered" error.
 */
export type PlatformActivities = CoolifyActivities &
  RegistryActivities &
  CiActivities & {
    triggerSmokeTest: CiActivities['triggerBuild'];
    waitForSmokeTest: CiActivities['waitForBuild'];
  } & PostgresActivities &
  S3Activities &
  ProxmoxActivities &
  GitActivities &
  SmokeActivities &
  QaActivities &
  PrometheusActivities &
  LokiActivities &
  GrafanaActivities &
  TelegramActivities &
  CdnActivities &
  TrafficProvider &
  ReleaseActivities &
  TemporalActivities &
  ReleaseLookupActivities;
