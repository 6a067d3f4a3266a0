/**
 * The local platform sandbox: everything a release touches, simulated on 127.0.0.1 by the same
 * spec-checked fakes the tests use, plus a throwaway PostgreSQL 15 cluster and local git repositories.
 * `npm start` runs the worker against it; the release workflow tests start one per test file and script
 * its fakes.
 *
 * `startSandbox` starts the fakes (Coolify, registry, GitHub Actions, Prometheus, Loki, Grafana, Telegram,
 * the CDN, Proxmox), an HTTP server standing in for the deployed applications, PostgreSQL and the git
 * repositories, and returns the platform configuration pointed at them, credentials matching every
 * reference in it, and the worker's local settings. Nothing leaves the machine: systems without a fake
 * (Supabase, object storage) point at a loopback server that answers 503.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import YAML from 'yaml';
import type { WorkerLocalSettings } from '../activities';
import type { CredentialRef } from '../config/credential-ref';
import { readPlatformConfig } from '../config/load-platform-config';
import type { PlatformConfig } from '../config/platform-config';
import { AppServer, type SandboxApplication } from './app-server';
import { CdnFake } from './fakes/cdn-fake';
import { CoolifyFake } from './fakes/coolify-fake';
import { GitHubActionsFake } from './fakes/github-actions-fake';
import { GrafanaFake } from './fakes/grafana-fake';
import { LokiFake } from './fakes/loki-fake';
import { PrometheusFake } from './fakes/prometheus-fake';
import { ProxmoxFake } from './fakes/proxmox-fake';
import { RegistryFake } from './fakes/registry-fake';
import { TelegramFake } from './fakes/telegram-fake';
import { startPostgresCluster, type PostgresCluster } from './postgres-cluster';
import { createSandboxGit, prepareWorkerRepository, type SandboxGit } from './sandbox-git';

/** The example configuration the sandbox starts from when none is given. */
export const EXAMPLE_CONFIG_FILE = path.join(__dirname, '..', '..', 'config', 'aceh-commerce.yaml');

/** The version every application runs when the sandbox starts; it is in the registry too. */
export const SANDBOX_PREVIOUS_VERSION = '1.1.0';

export interface SandboxOptions {
  /** Working directory (created); everything the sandbox writes goes here. */
  dir: string;
  /** Base configuration; default: config/aceh-commerce.yaml, without environment overrides. */
  config?: PlatformConfig;
  /** A throwaway PostgreSQL 15 cluster for `systems.postgres`; default true. */
  postgres?: boolean;
  /**
   * The freeze windows of the sandbox configuration; none by default (the example's weekend window would
   * block a demo release half of the week).
   */
  freezeWindows?: PlatformConfig['freezeWindows'];
  /** Progress lines while starting and stopping. */
  log?: (line: string) => void;
}

export interface SandboxFakes {
  coolify: CoolifyFake;
  registry: RegistryFake;
  ci: GitHubActionsFake;
  prometheus: PrometheusFake;
  loki: LokiFake;
  grafana: GrafanaFake;
  telegram: TelegramFake;
  cdn: CdnFake;
  proxmox: ProxmoxFake;
}

/** The worker's local settings as the sandbox fills them: all set. */
export type SandboxLocalSettings = Required<
  Pick<WorkerLocalSettings, 'gitDir' | 'snapshotDir' | 'gitRemote'>
> &
  WorkerLocalSettings;

export interface Sandbox {
  /**
   * The base configuration with every `systems.*` endpoint pointed at the sandbox, `systems.traffic` the
   * Traefik file provider in `dir`, `systems.postgres` the cluster (`sslMode: disable`),
   * `database.migrations` `<dir>/migrations`, freeze windows from the options (none by default); every
   * policy (approvers, monitoring, strategies) as in the base.
   */
  config: PlatformConfig;
  /** A value for every credential reference of `config` (all are environment references). */
  credentials: { env: Record<string, string> };
  /** For `createActivities({ local })`. */
  local: SandboxLocalSettings;
  /** The head of `main` in the sandbox's git remote when it started. */
  commit: string;
  /** The head of `main` in the git remote now. */
  head(): Promise<string>;
  /** Commits to `main` of the git remote and returns the new head's sha. */
  addCommit(message: string): Promise<string>;
  /** Pushes an image tagged `version` to the registry fake and returns its digest. */
  pushImage(version: string): Promise<string>;
  fakes: SandboxFakes;
  /** Every Coolify application of the configuration, each answering on the app server. */
  applications: SandboxApplication[];
  /** The app server standing in for the deployed applications (script unhealthy ones with `setHealth`). */
  apps: AppServer;
  /** The URL of an application (its Coolify `fqdn`); a smoke check appends the service's health path. */
  appUrl(applicationUuid: string): string;
  /** The cluster, when `postgres` was on. */
  postgres: PostgresCluster | undefined;
  /** The Traefik dynamic configuration file the traffic activities edit. */
  trafficFile: string;
  /** The tags of the git remote (release tags the worker pushed), sorted. */
  tags(): Promise<string[]>;
  /**
   * The weight of each target (`blue`, `green`, …) of `service` in the Traefik file, as the traffic
   * activities left it; empty when the file has no split for the service.
   */
  trafficWeights(service: string): Promise<Record<string, number>>;
  /** The target with the most weight for `service` (ties: the first listed), or null when none has any. */
  liveColour(service: string): Promise<string | null>;
  /**
   * The rows of the deployment audit table (`database.auditTable`), oldest first, of one workflow id when
   * given; empty while the table does not exist yet.
   *
   * @throws Error when the sandbox runs without PostgreSQL.
   */
  auditRows(workflowId?: string): Promise<AuditRow[]>;
  /**
   * The image tag each application of `environment` runs now, by service (`<service>/<colour>` for the two
   * applications of a side-by-side deployment).
   */
  runningTags(environment: string): Record<string, string | null>;
  /** {@link Sandbox.runningTags} of the staging environment (the first of tier `staging`). */
  stagingTags(): Record<string, string | null>;
  /**
   * Adds a migration file to `database.migrations` (applied by the next `applyMigrations`) and returns its
   * path.
   *
   * @throws Error for a name that is not a plain `*.sql` file name.
   */
  addMigration(name: string, sql: string): string;
  /**
   * Runs SQL as the cluster's superuser in the sandbox database (`systems.postgres.database`).
   *
   * @throws Error when the sandbox runs without PostgreSQL, or the SQL fails.
   */
  query<T extends object = Record<string, unknown>>(sql: string, params?: unknown[]): Promise<T[]>;
  /** Contract violations recorded by the fakes, by fake; empty when every exchange kept to the contracts. */
  violations(): Record<string, string[]>;
  /** What runs where, one line each, for a person reading the console. */
  describe(): string[];
  /** Stops every server and the cluster. Idempotent; the files in `dir` stay for inspection. */
  stop(): Promise<void>;
}

/** A row of the audit table as the driver returns it. */
export interface AuditRow {
  id: string;
  at: Date;
  workflow_id: string;
  run_id: string | null;
  step: string;
  actor: string;
  action: string;
  version: string | null;
  digest: string | null;
  decision: string | null;
  details: Record<string, unknown>;
  idempotency_key: string;
}

/** A credential value of the right shape for where it is used (the activities check some shapes). */
function credentialValue(pathInConfig: string[]): string {
  const key = pathInConfig[pathInConfig.length - 1];
  if (key === 'botToken')
    return `${7_000_000_000 + randomBytes(3).readUIntBE(0, 3)}:${randomBytes(24).toString('base64url')}`;
  if (key === 'tokenSecret') return randomUUID();
  return `sandbox-${randomBytes(16).toString('hex')}`;
}

function isCredentialRef(value: unknown): value is CredentialRef {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return false;
  const keys = Object.keys(value);
  return (
    keys.length === 1 &&
    (keys[0] === 'env' || keys[0] === 'file') &&
    typeof (value as Record<string, unknown>)[keys[0]] === 'string'
  );
}

/**
 * Turns every credential reference under `systems` into an environment reference (a file reference
 * becomes `SANDBOX_<FILE NAME>`) and draws a value for each.
 */
function sandboxCredentials(systems: PlatformConfig['systems']): {
  systems: PlatformConfig['systems'];
  env: Record<string, string>;
} {
  const env: Record<string, string> = {};
  const fileNames = new Map<string, string>();
  const envNameOf = (file: string): string => {
    const known = fileNames.get(file);
    if (known) return known;
    const stem = path
      .basename(file)
      .replace(/\.[^.]*$/, '')
      .toUpperCase()
      .replace(/[^A-Z0-9]+/g, '_');
    let name = `SANDBOX_${stem || 'SECRET'}`;
    for (let i = 2; [...fileNames.values()].includes(name); i++) name = `SANDBOX_${stem}_${i}`;
    fileNames.set(file, name);
    return name;
  };
  const walk = (value: unknown, at: string[]): unknown => {
    if (isCredentialRef(value)) {
      const name = 'env' in value ? value.env : envNameOf(value.file);
      env[name] ??= credentialValue(at);
      return { env: name };
    }
    if (Array.isArray(value)) return value.map((v, i) => walk(v, [...at, String(i)]));
    if (value !== null && typeof value === 'object') {
      return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, walk(v, [...at, k])]));
    }
    return value;
  };
  return { systems: walk(systems, ['systems']) as PlatformConfig['systems'], env };
}

/** The applications of every service and environment, from `services.*.deployments`. */
function applicationsOf(config: PlatformConfig): SandboxApplication[] {
  const apps: SandboxApplication[] = [];
  for (const [service, definition] of Object.entries(config.services)) {
    for (const [environment, target] of Object.entries(definition.deployments)) {
      const common = { service, environment, healthCheckPath: definition.healthCheckPath };
      if ('application' in target) apps.push({ uuid: target.application, ...common });
      else {
        apps.push({ uuid: target.blue, colour: 'blue', ...common });
        apps.push({ uuid: target.green, colour: 'green', ...common });
      }
    }
  }
  return apps;
}

/** The loopback server behind the systems the sandbox does not simulate: 503 with a reason, always. */
async function startUnsimulated(): Promise<{ url: string; port: number; close: () => Promise<void> }> {
  const server = http.createServer((req, res) => {
    req.resume();
    const body = JSON.stringify({
      message: 'aceh-release sandbox: this system (Supabase, object storage) is not simulated',
    });
    res.writeHead(503, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
    res.end(body);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** The Traefik dynamic configuration: a router per service, its split all on `blue`, both colours' servers. */
function traefikDynamicFile(
  config: PlatformConfig,
  applications: SandboxApplication[],
  urlOf: (uuid: string) => string,
): string {
  const routers: Record<string, unknown> = {};
  const services: Record<string, unknown> = {};
  for (const service of Object.keys(config.services)) {
    routers[service] = { rule: `Host(\`${service}.localhost\`)`, service };
    services[service] = {
      weighted: {
        services: [
          { name: `${service}-blue`, weight: 100 },
          { name: `${service}-green`, weight: 0 },
        ],
      },
    };
    for (const colour of ['blue', 'green']) {
      const app = applications.find((a) => a.service === service && a.colour === colour);
      services[`${service}-${colour}`] = {
        loadBalancer: { servers: [{ url: app ? urlOf(app.uuid) : 'http://127.0.0.1:9' }] },
      };
    }
  }
  return (
    '# Traefik file provider: the aceh-release sandbox routes every service to blue; the traffic\n' +
    '# activities move the weights.\n' +
    YAML.stringify({ http: { routers, services } })
  );
}

const MIGRATION = `-- The sandbox's first migration: harmless, and applied once.
CREATE TABLE IF NOT EXISTS public.release_notes (
  version text PRIMARY KEY,
  note text NOT NULL DEFAULT ''
);
`;

/** What the application's database holds before any release: a small catalogue, for snapshots to keep. */
const SEED = `
CREATE TABLE public.products (
  id integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  sku text NOT NULL UNIQUE,
  name text NOT NULL,
  price_idr bigint NOT NULL
);
INSERT INTO public.products (sku, name, price_idr) VALUES
  ('KOPI-GAYO-250', 'Kopi Gayo 250 g', 85000),
  ('SONGKET-ACEH', 'Songket Aceh', 1250000),
  ('KUEH-KARAH', 'Kueh Karah', 30000);
`;

/**
 * Starts the sandbox in `options.dir` (created; files from an earlier run are left, except those it
 * rewrites: wipe the directory first for a fresh start). Everything listens on 127.0.0.1, on free ports.
 *
 * @throws Error when something cannot start (a missing PostgreSQL or git binary, with what to install);
 *   whatever had started is stopped again first.
 */
export async function startSandbox(options: SandboxOptions): Promise<Sandbox> {
  const log = options.log ?? (() => undefined);
  const dir = path.resolve(options.dir);
  fs.mkdirSync(dir, { recursive: true });
  const base = options.config ?? readPlatformConfig({ file: EXAMPLE_CONFIG_FILE }).config;
  const { systems: refs, env } = sandboxCredentials(base.systems);
  const secret = (ref: CredentialRef): string => env['env' in ref ? ref.env : ''] ?? '';
  const closers: (() => Promise<unknown>)[] = [];
  const started = Date.now();

  // Independent pieces start together; PostgreSQL's initdb is the long pole.
  const postgresStarting =
    (options.postgres ?? true)
      ? startPostgresCluster({ parentDir: dir }).then((cluster) => {
          closers.push(() => cluster.destroy());
          return cluster;
        })
      : Promise.resolve(undefined);
  // Handled here as well: it is awaited only after the fakes are up.
  postgresStarting.catch(() => undefined);

  try {
    const [owner = 'owner', repo = 'repository'] = refs.git.repository.split('/');
    const chatId = refs.telegram.chatId;
    const numericChat = /^-?\d+$/.test(chatId);
    const track = <T extends { close(): Promise<unknown> }>(server: T): T => {
      closers.push(() => server.close());
      return server;
    };
    const starting = [
      CoolifyFake.start({ token: secret(refs.coolify.token) }).then(track),
      RegistryFake.start({ repositories: [refs.registry.repository] }).then(track),
      GitHubActionsFake.start({ token: secret(refs.ci.token), owner, repo }).then(track),
      PrometheusFake.start({
        services: Object.keys(base.services),
        ...(refs.prometheus.token ? { bearerToken: secret(refs.prometheus.token) } : {}),
      }).then(track),
      LokiFake.start({
        ...(refs.loki.tenant ? { tenant: refs.loki.tenant } : {}),
        ...(refs.loki.token ? { bearerToken: secret(refs.loki.token) } : {}),
      }).then(track),
      GrafanaFake.start({
        token: secret(refs.grafana.token),
        ...(refs.grafana.orgId !== undefined ? { orgId: refs.grafana.orgId } : {}),
        ...(refs.grafana.dashboardUid ? { dashboards: [refs.grafana.dashboardUid] } : {}),
      }).then(track),
      TelegramFake.start({
        token: secret(refs.telegram.botToken),
        chats: [
          numericChat
            ? { id: Number(chatId), type: 'supergroup', title: refs.telegram.channelName }
            : { id: -1_001_000_000_001, type: 'channel', username: chatId.slice(1) },
        ],
      }).then(track),
      CdnFake.start({ token: secret(refs.cdn.token), zones: [refs.cdn.zoneId] }).then(track),
      ProxmoxFake.start({
        node: base.backups.deploymentSnapshot.node,
        tokenId: refs.proxmox.tokenId,
        tokenSecret: secret(refs.proxmox.tokenSecret),
        // Tasks end on the first poll, as deployments and CI runs do here: the activity polls every 2 s.
        taskPolls: 1,
      }).then((fake) => {
        closers.push(() => fake.stop());
        return fake;
      }),
      startUnsimulated().then(track),
      createSandboxGit({
        dir: path.join(dir, 'git'),
        repository: refs.git.repository,
        branches: Object.values(refs.git.branches),
      }),
    ] as const;
    // Everything settles before a failure is thrown, so that every server that did start is stopped again.
    await Promise.allSettled(starting);
    const [coolify, registry, ci, prometheus, loki, grafana, telegram, cdn, proxmox, unsimulated, git] =
      await Promise.all(starting);

    // Deployments and builds end at their first poll: the activities poll at once, then every few seconds.
    coolify.queuedPolls = 0;
    coolify.runningPolls = 0;
    ci.queuedPolls = 0;
    ci.runningPolls = 0;
    ci.listDelay = 0;
    ci.resolveRef = (ref) => git.resolveRef(ref);
    ci.addWorkflow({ file: refs.ci.workflows.build, name: 'Build and push image' });
    ci.addWorkflow({
      file: refs.ci.workflows.smokeTest,
      name: 'Smoke test',
      runName: 'Smoke test {version}',
    });
    for (const vmid of base.backups.deploymentSnapshot.guests) {
      proxmox.addGuest({ vmid, name: `aceh-deploy-${vmid}` });
    }

    const applications = applicationsOf(base);
    const apps = track(
      await AppServer.start({
        applications,
        runningVersion: (uuid) => coolify.applications.get(uuid)?.runningTag ?? null,
      }),
    );
    const imageName = `${registry.host}/${refs.registry.repository}`;
    for (const app of applications) {
      coolify.addApplication({
        uuid: app.uuid,
        name: `${app.service}-${app.environment}${app.colour ? `-${app.colour}` : ''}`,
        docker_registry_image_name: imageName,
        docker_registry_image_tag: SANDBOX_PREVIOUS_VERSION,
        runningTag: SANDBOX_PREVIOUS_VERSION,
        localImageTags: [SANDBOX_PREVIOUS_VERSION],
        fqdn: apps.urlOf(app.uuid),
      });
    }
    registry.pushImage(SANDBOX_PREVIOUS_VERSION, { repository: refs.registry.repository });

    const trafficFile = path.join(dir, 'traefik', 'dynamic.yml');
    fs.mkdirSync(path.dirname(trafficFile), { recursive: true });
    fs.writeFileSync(
      trafficFile,
      traefikDynamicFile(base, applications, (uuid) => apps.urlOf(uuid)),
    );
    const migrations = path.join(dir, 'migrations');
    fs.mkdirSync(migrations, { recursive: true });
    fs.writeFileSync(path.join(migrations, '0001_init.sql'), MIGRATION);

    const local: SandboxLocalSettings = {
      gitDir: path.join(dir, 'worker', 'git'),
      snapshotDir: path.join(dir, 'worker', 'snapshots'),
      gitRemote: git.remote,
    };
    fs.mkdirSync(local.snapshotDir, { recursive: true });
    await prepareWorkerRepository(path.resolve(local.gitDir, `${refs.git.repository}.git`));

    const cluster = await postgresStarting;
    const database = { name: 'aceh_commerce', user: 'aceh_release' };
    if (cluster) {
      await cluster.createDatabase(database.name, {
        user: database.user,
        password: secret(refs.postgres.password),
      });
      // As the database owner, who runs the migrations and so may alter these tables.
      await cluster.query(`SET ROLE ${database.user}; ${SEED}`, [], database.name);
      local.pgDumpPath = cluster.tools.pgDump;
      local.pgRestorePath = cluster.tools.pgRestore;
    }

    const config: PlatformConfig = {
      ...base,
      systems: {
        ...refs,
        coolify: { ...refs.coolify, url: coolify.baseUrl },
        registry: { ...refs.registry, url: registry.baseUrl },
        supabase: {
          ...refs.supabase,
          url: `${unsimulated.url}/supabase`,
          ...(refs.supabase.edgeFunctionsFailoverUrl
            ? { edgeFunctionsFailoverUrl: `${unsimulated.url}/edge-functions` }
            : {}),
        },
        postgres: {
          ...refs.postgres,
          host: '127.0.0.1',
          // Without a cluster, a port that answers but speaks no PostgreSQL: connections fail at once.
          port: cluster ? cluster.port : unsimulated.port,
          database: database.name,
          user: database.user,
          sslMode: 'disable',
        },
        objectStorage: { ...refs.objectStorage, endpoint: unsimulated.url },
        proxmox: { ...refs.proxmox, url: proxmox.baseUrl, verifyTls: false },
        loki: { ...refs.loki, url: loki.baseUrl },
        prometheus: { ...refs.prometheus, url: prometheus.baseUrl },
        grafana: { ...refs.grafana, url: grafana.baseUrl },
        telegram: { ...refs.telegram, apiUrl: telegram.baseUrl },
        cdn: { ...refs.cdn, apiUrl: cdn.baseUrl },
        git: { ...refs.git, apiUrl: ci.baseUrl },
        ci: { ...refs.ci, apiUrl: ci.baseUrl },
        traffic: {
          provider: 'traefik',
          file: trafficFile,
          services: Object.fromEntries(
            Object.keys(base.services).map((s) => [
              s,
              { targets: { blue: `${s}-blue`, green: `${s}-green` } },
            ]),
          ),
        },
      },
      freezeWindows: options.freezeWindows ?? [],
      database: { ...base.database, migrations },
    };

    const fakes: SandboxFakes = { coolify, registry, ci, prometheus, loki, grafana, telegram, cdn, proxmox };
    const commit = await git.head();
    let stopping: Promise<void> | undefined;
    const sandbox: Sandbox = {
      config,
      credentials: { env },
      local,
      commit,
      head: () => git.head(),
      addCommit: (message) => git.addCommit(message),
      pushImage: (version) =>
        Promise.resolve(registry.pushImage(version, { repository: refs.registry.repository })),
      fakes,
      applications,
      apps,
      appUrl: (uuid) => apps.urlOf(uuid),
      postgres: cluster,
      trafficFile,
      tags: () => git.tags(),
      trafficWeights: (service) => trafficWeights(trafficFile, service),
      async liveColour(service) {
        let best: [string, number] | undefined;
        for (const entry of Object.entries(await trafficWeights(trafficFile, service))) {
          if (entry[1] > 0 && (!best || entry[1] > best[1])) best = entry;
        }
        return best?.[0] ?? null;
      },
      async auditRows(workflowId) {
        if (!cluster) throw new Error('the sandbox runs without PostgreSQL: start it with postgres: true');
        const table = config.database.auditTable
          .split('.')
          .map((part) => `"${part.replace(/"/g, '""')}"`)
          .join('.');
        const where = workflowId === undefined ? '' : ' WHERE workflow_id = $1';
        try {
          return await cluster.query<AuditRow>(
            `SELECT * FROM ${table}${where} ORDER BY id`,
            workflowId === undefined ? [] : [workflowId],
            database.name,
          );
        } catch (err) {
          // undefined_table: nothing has been recorded yet.
          if ((err as { code?: string }).code === '42P01') return [];
          throw err;
        }
      },
      runningTags: (environment) => runningTags(coolify, applications, environment),
      stagingTags() {
        const staging = Object.entries(config.environments).find(([, e]) => e.tier === 'staging')?.[0];
        return staging === undefined ? {} : runningTags(coolify, applications, staging);
      },
      addMigration(name, sql) {
        if (!/^[A-Za-z0-9][A-Za-z0-9._-]*\.sql$/.test(name)) {
          throw new Error(`a migration is a plain file name ending in .sql, not ${name}`);
        }
        const file = path.join(migrations, name);
        fs.writeFileSync(file, sql);
        return file;
      },
      async query<T extends object>(sql: string, params: unknown[] = []) {
        if (!cluster) throw new Error('the sandbox runs without PostgreSQL: start it with postgres: true');
        return cluster.query<T>(sql, params, database.name);
      },
      violations() {
        const found: Record<string, string[]> = {};
        for (const [name, fake] of Object.entries(fakes) as [string, { violations: string[] }][]) {
          if (fake.violations.length > 0) found[name] = [...fake.violations];
        }
        return found;
      },
      describe: () => describeSandbox({ dir, fakes, apps, git, cluster, config, local }),
      stop() {
        stopping ??= stopAll(closers).then(() => log('sandbox: stopped'));
        return stopping;
      },
    };
    log(`sandbox: started in ${Date.now() - started} ms`);
    return sandbox;
  } catch (err) {
    // A cluster still starting registers its closer when it is up: wait for it, then stop everything.
    await postgresStarting.catch(() => undefined);
    await stopAll(closers).catch(() => undefined);
    throw err;
  }
}

function runningTags(
  coolify: CoolifyFake,
  applications: SandboxApplication[],
  environment: string,
): Record<string, string | null> {
  const tags: Record<string, string | null> = {};
  for (const app of applications.filter((a) => a.environment === environment)) {
    const key = app.colour ? `${app.service}/${app.colour}` : app.service;
    tags[key] = coolify.applications.get(app.uuid)?.runningTag ?? null;
  }
  return tags;
}

/** The weights of `service`'s split in the Traefik file, by logical target (`<service>-blue` is `blue`). */
async function trafficWeights(file: string, service: string): Promise<Record<string, number>> {
  const doc = YAML.parse(await fs.promises.readFile(file, 'utf8')) as {
    http?: { services?: Record<string, { weighted?: { services?: { name: string; weight?: number }[] } }> };
  } | null;
  const services = doc?.http?.services ?? {};
  // While mirroring, the service is the mirror and its split lives in `<service>-weighted`.
  const split = services[service]?.weighted ?? services[`${service}-weighted`]?.weighted;
  const weights: Record<string, number> = {};
  for (const entry of split?.services ?? []) {
    const target = entry.name.startsWith(`${service}-`) ? entry.name.slice(service.length + 1) : entry.name;
    weights[target] = entry.weight ?? 1;
  }
  return weights;
}

/** Closes in reverse order of starting; every closer runs even when one fails, the first failure is thrown. */
async function stopAll(closers: (() => Promise<unknown>)[]): Promise<void> {
  const results = await Promise.allSettled(
    closers
      .splice(0)
      .reverse()
      .map((close) => close()),
  );
  const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) throw failed.reason;
}

function describeSandbox(s: {
  dir: string;
  fakes: SandboxFakes;
  apps: AppServer;
  git: SandboxGit;
  cluster: PostgresCluster | undefined;
  config: PlatformConfig;
  local: SandboxLocalSettings;
}): string[] {
  const { fakes } = s;
  return [
    `directory      ${s.dir}`,
    `Coolify        ${fakes.coolify.baseUrl}`,
    `registry       ${fakes.registry.baseUrl} (repository ${s.config.systems.registry.repository})`,
    `GitHub Actions ${fakes.ci.baseUrl}`,
    `git remote     ${s.git.remote}`,
    `Prometheus     ${fakes.prometheus.baseUrl}`,
    `Loki           ${fakes.loki.baseUrl}`,
    `Grafana        ${fakes.grafana.baseUrl}`,
    `Telegram       ${fakes.telegram.baseUrl}`,
    `CDN            ${fakes.cdn.baseUrl}`,
    `Proxmox        ${fakes.proxmox.baseUrl}`,
    `applications   ${s.apps.baseUrl}/<application uuid>`,
    `traffic        ${s.config.systems.traffic?.provider === 'traefik' ? s.config.systems.traffic.file : ''}`,
    s.cluster
      ? `PostgreSQL     127.0.0.1:${s.cluster.port} database ${s.config.systems.postgres.database}`
      : 'PostgreSQL     off',
    `snapshots      ${s.local.snapshotDir}`,
  ];
}
