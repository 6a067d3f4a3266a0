/**
 * The platform configuration: everything that differs between one company running this stack and another
 * (E1). Environments and their domains, services, the deployment strategy per environment (S1-S4), the
 * endpoints and credential references of every external system (E2), the approval policy, freeze windows,
 * post-deployment monitoring thresholds (M2-M4), backup policies (B1-B4) and the recovery point objective
 * (R2).
 *
 * This module is the shape of one file, checked field by field. Rules that relate fields to each other
 * (an RPO against a backup schedule, approvals against approvers, domains against certificates) live in
 * `config-rules.ts`; reading files and environment overrides in `load-platform-config.ts`.
 *
 * Conventions of the file:
 * - durations are text such as `10m`, `12h`, `30d` and come out of parsing as milliseconds;
 * - fractions (error rates, regressions) are numbers between 0 and 1: `0.05` is 5%;
 * - every credential is a reference, `{ env: NAME }` or `{ file: PATH }`, never the secret itself;
 * - URLs are https (H1); plain http only for `.local` development domains and loopback endpoints.
 *
 * Deterministic: no I/O. Workflow code may import the types, and the schema too.
 */
import { z } from 'zod';
import { CredentialRef } from './credential-ref';
import { CronExpression } from './cron';
import { Duration } from './duration';
import { TimeZone, hasUtcOffset } from './time-zone';

// ---------------------------------------------------------------------------------------------------------
// Building blocks

/** An error message for a schema, except "is required" when the setting is missing altogether. */
export const requiredOr =
  (message: string) =>
  (issue: { input?: unknown }): string =>
    issue.input === undefined ? 'is required' : message;

/**
 * A credential by reference. Same shape as {@link CredentialRef}; a plain string here is refused with the
 * advice to write a reference instead, and the refusal never repeats the value.
 */
export const SecretRef = z.union(CredentialRef.options, {
  error: (issue) =>
    issue.input === undefined
      ? 'is required: a credential reference, {env: NAME} or {file: PATH}'
      : typeof issue.input === 'string' || typeof issue.input === 'number'
        ? 'is an inline secret: configuration holds only references; write {env: NAME} or {file: PATH}'
        : 'must be a credential reference: {env: NAME} (an environment variable) or {file: PATH} (a mounted secret)',
});
export type SecretRef = z.infer<typeof SecretRef>;

/** Lower-case name with digits and dashes: environment, service and domain names. */
const Name = (what: string, example: string) =>
  z
    .string()
    .regex(
      /^[a-z][a-z0-9-]{0,62}$/,
      `${what} must be lower-case letters, digits and dashes, e.g. ${example}`,
    );

/** The name of an environment, a key of `environments`. */
export const EnvironmentName = Name('an environment name', 'production');
/** The name of a service, a key of `services`. */
export const ServiceName = Name('a service name', 'api-gateway');

/** A person who may request or approve releases, as they sign approval signals (a login or handle). */
export const Identity = z
  .string()
  .regex(/^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$/, 'must be a login such as rizki or ops@luxima.id');

/** A fraction between 0 and 1 (`0.05` is 5%). */
const Fraction = z
  .number({ error: requiredOr('must be a number between 0 and 1, e.g. 0.05 for 5%') })
  .gt(0, { error: 'must be above 0' })
  .max(1, { error: 'must be a fraction at most 1: write 0.05 for 5%, not 5' });

/** Whether plain http is tolerable for `host`: loopback, or a `.local` name on the local network. */
export function isLocalHost(hostname: string): boolean {
  const h = hostname.toLowerCase().replace(/^\[|\]$/g, '');
  return (
    h === 'localhost' ||
    h.endsWith('.localhost') ||
    h.endsWith('.local') ||
    h === '::1' ||
    /^127(?:\.\d{1,3}){3}$/.test(h)
  );
}

function parseWebUrl(text: string): URL | undefined {
  if (!/^[a-z][a-z0-9+.-]*:\/\//i.test(text)) return undefined;
  try {
    return new URL(text);
  } catch {
    return undefined;
  }
}

/**
 * The base URL of an external system (`https://coolify.luxima.id/api/v1`). https, or http to a loopback or
 * `.local` host only (H1); no user or password inside (use a credential reference); no query or fragment.
 * Comes out without a trailing slash.
 */
export const SystemUrl = z.string().transform((text, ctx) => {
  const url = parseWebUrl(text);
  const fail = (message: string) => {
    ctx.addIssue({ code: 'custom', message, continue: true });
    return z.NEVER;
  };
  if (!url || (url.protocol !== 'https:' && url.protocol !== 'http:')) {
    return fail('must be an https URL such as https://coolify.example.com');
  }
  if (url.username || url.password) {
    return fail(
      'must not carry a user or password: put credentials in a reference, {env: NAME} or {file: PATH}',
    );
  }
  if (url.search || url.hash) return fail('must not have a query or fragment');
  if (url.protocol === 'http:' && !isLocalHost(url.hostname)) {
    return fail('must be an https URL (H1: HTTPS everywhere); plain http only to loopback or .local hosts');
  }
  return text.replace(/\/+$/, '');
});

/**
 * The URL of a public domain (`https://acehcommerce.id`): scheme and host (and port) only. Whether http
 * is allowed depends on the environment's tier and is checked there.
 */
export const DomainUrl = z.string().superRefine((text, ctx) => {
  const url = parseWebUrl(text);
  if (!url || (url.protocol !== 'https:' && url.protocol !== 'http:')) {
    ctx.addIssue({ code: 'custom', message: 'must be an https URL such as https://acehcommerce.id' });
  } else if (url.username || url.password || url.search || url.hash || url.pathname !== '/') {
    ctx.addIssue({
      code: 'custom',
      message: 'must be only a scheme and host, such as https://acehcommerce.id',
    });
  }
});

/** Host name of a domain URL already accepted by {@link DomainUrl}, lower case, with its port if any. */
export function domainHost(url: string): string {
  return new URL(url).host.toLowerCase();
}

/** Placeholders a LogQL/PromQL template may use; the monitoring activities fill them in. */
export const QUERY_PLACEHOLDERS = ['environment', 'service', 'version', 'color', 'window'] as const;
/** A LogQL/PromQL query with `${placeholder}`s from {@link QUERY_PLACEHOLDERS}. */
const QueryTemplate = z
  .string()
  .min(1, 'must not be empty')
  .superRefine((text, ctx) => {
    for (const [, name] of text.matchAll(/\$\{([^}]*)\}/g)) {
      if (!(QUERY_PLACEHOLDERS as readonly string[]).includes(name ?? '')) {
        ctx.addIssue({
          code: 'custom',
          message: `unknown placeholder \${${name}}; known: ${QUERY_PLACEHOLDERS.map((p) => `\${${p}}`).join(', ')}`,
        });
      }
    }
  });

/** An ISO 8601 date-time; with an offset (`2025-12-10T00:00:00+07:00`) or local to a time zone. */
const IsoDateTime = z.iso.datetime({
  offset: true,
  local: true,
  error: requiredOr('must be an ISO 8601 date-time such as 2025-12-10T00:00:00+07:00'),
});

/** An S3/MinIO bucket name. */
const BucketName = z
  .string()
  .regex(
    /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/,
    'must be a bucket name: 3-63 lower-case letters, digits, dots, dashes',
  );

/** A key prefix in a bucket: no leading slash, ends with one. */
const KeyPrefix = z
  .string()
  .regex(
    /^(?:[A-Za-z0-9._-]+\/)+$/,
    'must be a key prefix such as database/ (no leading slash, ending with /)',
  );

/** An image repository name inside a registry (OCI distribution `name`). */
const RepositoryName = z
  .string()
  .regex(
    /^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*(?:\/[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*)*$/,
    'must be an image repository name such as aceh-commerce (lower case, / between parts)',
  );

/** A Coolify resource UUID. */
const CoolifyUuid = z
  .string()
  .regex(/^[A-Za-z0-9-]{4,64}$/, 'must be a Coolify application UUID (letters, digits, dashes)');

// ---------------------------------------------------------------------------------------------------------
// Environments and strategies (E1, S1-S4, H1)

/** S1: deploy to the idle colour, verify, switch traffic, keep the old colour ready to switch back. */
export const BlueGreenStrategy = z.strictObject({
  type: z.literal('blue-green'),
  /** How traffic moves between colours: a DNS record, the CDN origin, or a load balancer backend. */
  trafficSwitch: z.enum(['dns', 'cdn-origin', 'load-balancer']).default('dns'),
  /** How long the idle colour is checked before traffic is switched to it. */
  verifyFor: Duration({ max: '24h' }).prefault('10m'),
  /** How long the previous colour stays deployed, ready for an instant switch back. */
  keepPreviousFor: Duration({ max: '90d' }).prefault('24h'),
});

/** S2: replace instances batch by batch without downtime. */
export const RollingStrategy = z.strictObject({
  type: z.literal('rolling'),
  batchSize: z.int().min(1).default(1),
  pauseBetweenBatches: Duration({ allowZero: true, max: '1h' }).prefault('30s'),
  /**
   * A rolling update cannot switch back instantly. Production with rolling updates is refused unless
   * this says the operator accepts that.
   */
  acknowledgeNoInstantRollback: z.boolean().default(false),
});

/** S3: send a growing share of users to the new version, gated by metrics at every step. */
export const CanaryStrategy = z.strictObject({
  type: z.literal('canary'),
  /** Traffic percentages, strictly increasing, ending at 100, e.g. [5, 25, 50, 100]. */
  steps: z
    .array(
      z
        .int({ error: requiredOr('must be a whole percentage') })
        .min(1, 'must be at least 1%')
        .max(100, 'must be at most 100%'),
      {
        error: (issue) =>
          issue.input === undefined
            ? 'a canary strategy needs weight steps, e.g. [5, 25, 50, 100]'
            : 'must be a list of percentages, e.g. [5, 25, 50, 100]',
      },
    )
    .min(1, 'a canary strategy needs weight steps, e.g. [5, 25, 50, 100]')
    .superRefine((steps, ctx) => {
      for (let i = 1; i < steps.length; i++) {
        if (steps[i]! <= steps[i - 1]!) {
          ctx.addIssue({
            code: 'custom',
            path: [i],
            message: `must be greater than the step before (${steps[i - 1]}): steps grow strictly`,
          });
        }
      }
      if (steps.length > 0 && steps[steps.length - 1] !== 100) {
        ctx.addIssue({ code: 'custom', message: 'must end at 100: the last step sends all traffic' });
      }
    }),
  /** How long each step is observed before widening. */
  stepDuration: Duration({ max: '24h' }).prefault('10m'),
});

/** S4: run the new version next to the live one on mirrored traffic; it never answers users. */
export const ShadowStrategy = z.strictObject({
  type: z.literal('shadow'),
  /** Share of live requests mirrored to the shadow deployment, 1-100. */
  mirrorPercent: z.int().min(1).max(100).default(100),
  /** How long traffic is mirrored and compared. */
  duration: Duration({ max: '7d' }).prefault('30m'),
  /** Largest tolerated p95 latency regression against live, as a fraction (0.2 = 20% slower). */
  maxLatencyRegression: z.number().positive().default(0.2),
});

/** The deployment strategies, S1-S4. */
export const STRATEGY_TYPES = ['blue-green', 'canary', 'shadow', 'rolling'] as const;

/** One deployment strategy, chosen by `type`. */
export const DeploymentStrategy = z.discriminatedUnion(
  'type',
  [BlueGreenStrategy, CanaryStrategy, ShadowStrategy, RollingStrategy],
  { error: requiredOr(`type must be one of ${STRATEGY_TYPES.join(', ')}`) },
);
export type DeploymentStrategy = z.infer<typeof DeploymentStrategy>;

/** What an environment is for; the rules (https, approval, rolling) depend on it. */
export const TIERS = ['development', 'staging', 'production'] as const;

/** Names an environment gives its extra domains (`admin`, `auth`, `api`); `main` is its own domain. */
export const DomainName = Name('a domain name', 'admin').refine((n) => n !== 'main', {
  message: '"main" is the environment\'s own domain; choose another name',
});

/**
 * One environment (E1): its tier, its domain and extra domains, and how releases reach it. Plain http is
 * accepted only for a `.local` development domain (H1); staging and production must be public https.
 */
export const Environment = z
  .strictObject({
    tier: z.enum(TIERS, { error: requiredOr(`tier must be one of ${TIERS.join(', ')}`) }),
    description: z.string().optional(),
    /** The environment's main URL, e.g. `https://acehcommerce.id`. */
    domain: DomainUrl,
    /** Further domains served in this environment, by name: admin panel, auth service, API gateway. */
    domains: z.record(DomainName, DomainUrl).default({}),
    /** The default strategy of a release to this environment. */
    strategy: DeploymentStrategy,
    /** Strategies a release may ask for instead (canary for experiments, shadow for pre-release checks). */
    alternativeStrategies: z.array(DeploymentStrategy).default([]),
  })
  .superRefine((env, ctx) => {
    const check = (url: string, path: (string | number)[]) => {
      const parsed = parseWebUrl(url);
      if (!parsed) return; // reported by DomainUrl
      const local = isLocalHost(parsed.hostname);
      if (parsed.protocol === 'http:' && !(local && env.tier === 'development')) {
        ctx.addIssue({
          code: 'custom',
          path,
          message:
            env.tier === 'development'
              ? 'must be an https URL (H1); plain http only for a .local development domain'
              : `must be an https URL (H1: ${env.tier} is served over HTTPS only)`,
        });
      } else if (local && env.tier !== 'development') {
        ctx.addIssue({
          code: 'custom',
          path,
          message: `is a local name; a ${env.tier} environment needs a public https domain`,
        });
      }
    };
    check(env.domain, ['domain']);
    for (const [name, url] of Object.entries(env.domains)) check(url, ['domains', name]);
  });
export type Environment = z.infer<typeof Environment>;

// ---------------------------------------------------------------------------------------------------------
// Services

/** Where a service runs in one environment: one Coolify application, or two (blue and green). */
export const DeploymentTarget = z.union(
  [z.strictObject({ application: CoolifyUuid }), z.strictObject({ blue: CoolifyUuid, green: CoolifyUuid })],
  {
    error: requiredOr(
      'must be {application: <coolify uuid>} or, for blue-green, canary and shadow, {blue: <uuid>, green: <uuid>}',
    ),
  },
);
export type DeploymentTarget = z.infer<typeof DeploymentTarget>;

/** One deployable service of the platform (storefront, admin panel, auth service, API gateway). */
export const Service = z.strictObject({
  description: z.string().optional(),
  /** Image repository in the registry; default `systems.registry.repository`. */
  repository: RepositoryName.optional(),
  /** Which domain of each environment it serves: `main` (the environment's domain) or a `domains` name. */
  domain: z.union([z.literal('main'), DomainName]).default('main'),
  /** Path probed after a deployment to see that it is up. */
  healthCheckPath: z
    .string()
    .regex(/^\/\S*$/, 'must be a path starting with /')
    .default('/'),
  /** Where it is deployed, per environment name. */
  deployments: z
    .record(EnvironmentName, DeploymentTarget)
    .refine((d) => Object.keys(d).length > 0, 'must name at least one environment'),
});
export type Service = z.infer<typeof Service>;

// ---------------------------------------------------------------------------------------------------------
// External systems (E2): endpoints and credential references

/** Coolify (deployments, R1 rollback). `url` is the API base, ending in `/api/v1`. */
export const CoolifySystem = z.strictObject({ url: SystemUrl, token: SecretRef });

/** The image registry (`registry.luxima.id`) and the repository releases are pushed to. */
export const RegistrySystem = z
  .strictObject({
    url: SystemUrl,
    repository: RepositoryName,
    username: z.string().min(1).optional(),
    password: SecretRef.optional(),
  })
  .refine((r) => !!r.username === !!r.password, {
    message: 'username and password go together (or neither, for an anonymous registry)',
    path: ['password'],
  });

/** Supabase self-hosted (H3: application data goes through its API), with the Fly.io failover of E2. */
export const SupabaseSystem = z.strictObject({
  url: SystemUrl,
  serviceRoleKey: SecretRef,
  edgeFunctionsFailoverUrl: SystemUrl.optional(),
});

/** Direct PostgreSQL connection used only by backup and restore (B1, R2). */
export const PostgresSystem = z.strictObject({
  host: z.string().min(1),
  port: z.int().min(1).max(65535).default(5432),
  database: z.string().min(1).default('postgres'),
  user: z.string().min(1),
  password: SecretRef,
  sslMode: z.enum(['disable', 'require', 'verify-ca', 'verify-full']).default('verify-full'),
});

/** MinIO or S3: the backed-up buckets (B2) and the backup destination. */
export const ObjectStorageSystem = z.strictObject({
  provider: z.enum(['minio', 's3']),
  endpoint: SystemUrl,
  region: z.string().min(1).default('us-east-1'),
  forcePathStyle: z.boolean().default(true),
  accessKeyId: SecretRef,
  secretAccessKey: SecretRef,
});

/** Proxmox VE cluster (B3 templates), reached with an API token `user@realm!name`. */
export const ProxmoxSystem = z.strictObject({
  url: SystemUrl,
  tokenId: z
    .string()
    .regex(
      /^[^\s@!]+@[^\s@!]+![A-Za-z][A-Za-z0-9._-]*$/,
      'must be a Proxmox token id such as release@pve!aceh',
    ),
  tokenSecret: SecretRef,
  /** Verify the cluster's TLS certificate; only turn off for a self-signed lab cluster. */
  verifyTls: z.boolean().default(true),
});

/** Loki (M2 error-log scan, B4 log archive). Loki has no auth of its own; a proxy may want a token. */
export const LokiSystem = z.strictObject({
  url: SystemUrl,
  tenant: z.string().min(1).optional(),
  token: SecretRef.optional(),
});

/** Prometheus (M3 baseline, M4 error rate). */
export const PrometheusSystem = z.strictObject({ url: SystemUrl, token: SecretRef.optional() });

/** Grafana (deployment annotations). */
export const GrafanaSystem = z.strictObject({
  url: SystemUrl,
  token: SecretRef,
  orgId: z.int().min(1).optional(),
  dashboardUid: z.string().min(1).optional(),
});

/** Telegram (R4 notifications to `#luxima-alerts`). */
export const TelegramSystem = z.strictObject({
  apiUrl: SystemUrl.prefault('https://api.telegram.org'),
  botToken: SecretRef,
  /** Numeric chat id (`-100…` for channels and supergroups) or `@channelusername`. */
  chatId: z.union(
    [
      z.int().transform(String),
      z.string().regex(/^(?:-?\d+|@[A-Za-z][A-Za-z0-9_]{4,31})$/, {
        error: 'must be a numeric chat id such as -1001234567890 or @channelname',
      }),
    ],
    { error: requiredOr('must be a numeric chat id such as -1001234567890 or @channelname') },
  ),
  /** Topic inside a forum supergroup, if alerts go to one. */
  messageThreadId: z.int().min(1).optional(),
  /** The human name of the destination, used in messages and logs. */
  channelName: z.string().min(1),
});

/** The CDN whose cache is invalidated on release and rollback (R3). */
export const CdnSystem = z.strictObject({
  provider: z.literal('cloudflare'),
  apiUrl: SystemUrl.prefault('https://api.cloudflare.com/client/v4'),
  zoneId: z.string().regex(/^[0-9a-f]{32}$/, 'must be a Cloudflare zone id: 32 hexadecimal digits'),
  token: SecretRef,
  /** Purge everything, or only the hosts of the environment being released. */
  purge: z.enum(['everything', 'hosts']).default('hosts'),
});

/** Git hosting (L3 branches, L1 tags). */
export const GitSystem = z.strictObject({
  provider: z.literal('github'),
  apiUrl: SystemUrl.prefault('https://api.github.com'),
  repository: z.string().regex(/^[A-Za-z0-9_.-]+\/[A-Za-z0-9_.-]+$/, 'must be owner/name'),
  token: SecretRef,
  branches: z
    .strictObject({
      production: z.string().min(1).default('main'),
      staging: z.string().min(1).default('staging'),
      integration: z.string().min(1).default('develop'),
      feature: z.string().min(1).default('feature/*'),
      hotfix: z.string().min(1).default('hotfix/*'),
    })
    .prefault({}),
});

/** Continuous integration (L2 build, M1 smoke test). */
export const CiSystem = z.strictObject({
  provider: z.literal('github-actions'),
  apiUrl: SystemUrl.prefault('https://api.github.com'),
  token: SecretRef,
  workflows: z.strictObject({
    build: z.string().min(1),
    smokeTest: z.string().min(1),
  }),
});

/** Names of traffic targets, services and backends in the traffic section. */
const TrafficName = z
  .string()
  .regex(/^[A-Za-z0-9][A-Za-z0-9._@-]{0,199}$/, 'must be a name of letters, digits, ".", "_", "@" or "-"');

/**
 * The traffic provider that switches (S1), splits (S3) and mirrors (S4) user requests, with its own
 * settings; `services` maps a service to the provider's names. Optional: without it the worker registers
 * no traffic activities.
 */
export const TrafficSystem = z.discriminatedUnion('provider', [
  /** HAProxy's runtime API: a service is a backend, a target one of its servers. */
  z.strictObject({
    provider: z.literal('haproxy'),
    /** The runtime API socket (declared `level admin`): a unix socket path, or host and port. */
    socket: z.union([
      z.strictObject({ path: z.string().min(1) }),
      z.strictObject({ host: z.string().min(1), port: z.int().min(1).max(65535) }),
    ]),
    services: z
      .record(
        TrafficName,
        z.strictObject({
          backend: TrafficName.optional(),
          targets: z.record(TrafficName, TrafficName).optional(),
        }),
      )
      .optional(),
  }),
  /** Traefik's file provider: the adapter rewrites the dynamic configuration file. */
  z.strictObject({
    provider: z.literal('traefik'),
    file: z.string().min(1),
    services: z
      .record(TrafficName, z.strictObject({ targets: z.record(TrafficName, TrafficName).optional() }))
      .optional(),
  }),
  /** Cloudflare DNS: a service is a DNS record, a target the address (or CNAME host) it points to. */
  z.strictObject({
    provider: z.literal('cloudflare-dns'),
    apiUrl: SystemUrl.prefault('https://api.cloudflare.com/client/v4'),
    zoneId: z.string().regex(/^[0-9a-f]{32}$/, 'must be a Cloudflare zone id: 32 hexadecimal digits'),
    /** An API token with DNS edit permission on the zone. */
    token: SecretRef,
    services: z.record(
      TrafficName,
      z.strictObject({
        record: z.string().min(1),
        type: z.enum(['A', 'AAAA', 'CNAME']).default('A'),
        targets: z.record(TrafficName, z.string().min(1)),
      }),
    ),
  }),
]);
export type TrafficSystem = z.infer<typeof TrafficSystem>;

/** Every external system the activities talk to. */
export const Systems = z.strictObject({
  coolify: CoolifySystem,
  registry: RegistrySystem,
  supabase: SupabaseSystem,
  postgres: PostgresSystem,
  objectStorage: ObjectStorageSystem,
  proxmox: ProxmoxSystem,
  loki: LokiSystem,
  prometheus: PrometheusSystem,
  grafana: GrafanaSystem,
  telegram: TelegramSystem,
  cdn: CdnSystem,
  git: GitSystem,
  ci: CiSystem,
  traffic: TrafficSystem.optional(),
});
export type Systems = z.infer<typeof Systems>;

// ---------------------------------------------------------------------------------------------------------
// Policies

/**
 * Who approves releases to which environments (L2, L6). With separation of duties the requester of a
 * release may not approve it; `requiredApprovals` distinct approvers must.
 */
export const ApprovalPolicy = z.strictObject({
  environments: z.array(EnvironmentName).min(1, 'must name at least one environment'),
  approvers: z.array(Identity).min(1, 'must list at least one approver'),
  requiredApprovals: z.int({ error: requiredOr('must be a whole number') }).min(1, 'must be at least 1'),
  separationOfDuties: z.boolean().default(true),
  /**
   * After this long without a decision, the approval reminders say the release is overdue. A release never
   * gives up waiting on its own (approval may take days: L6); reject or cancel it to end it.
   */
  timeout: Duration({ min: '1m', max: '90d' }).prefault('7d'),
  /** How often a waiting release reminds the approvers on Telegram. */
  reminderInterval: Duration({ min: '1m', max: '30d' }).prefault('12h'),
  /** The shorter hotfix path (L3): fewer approvals, still recorded. */
  hotfix: z.strictObject({ requiredApprovals: z.int().min(1, 'must be at least 1') }).optional(),
});
export type ApprovalPolicy = z.infer<typeof ApprovalPolicy>;

/**
 * A period in which releases to some environments are refused: recurring (a cron giving each start, plus
 * a duration) or once (start and end). Times without an offset are wall-clock times in `timezone`, or in
 * the organization's time zone.
 */
export const FreezeWindow = z
  .strictObject({
    name: z.string().min(1),
    reason: z.string().optional(),
    environments: z.array(EnvironmentName).min(1, 'must name at least one environment'),
    timezone: TimeZone.optional(),
    cron: CronExpression.optional(),
    duration: Duration({ max: '366d' }).optional(),
    start: IsoDateTime.optional(),
    end: IsoDateTime.optional(),
    /** Whether the hotfix path (L3) may release during this window. */
    allowHotfixes: z.boolean().default(false),
  })
  .superRefine((w, ctx) => {
    const recurring = w.cron !== undefined || w.duration !== undefined;
    const once = w.start !== undefined || w.end !== undefined;
    if (recurring && once) {
      ctx.addIssue({
        code: 'custom',
        message: 'is either recurring (cron + duration) or once (start + end), not both',
      });
    } else if (recurring) {
      if (w.cron === undefined)
        ctx.addIssue({ code: 'custom', path: ['cron'], message: 'is required with duration' });
      if (w.duration === undefined)
        ctx.addIssue({ code: 'custom', path: ['duration'], message: 'is required with cron' });
    } else if (once) {
      if (w.start === undefined)
        ctx.addIssue({ code: 'custom', path: ['start'], message: 'is required with end' });
      if (w.end === undefined)
        ctx.addIssue({ code: 'custom', path: ['end'], message: 'is required with start' });
    } else {
      ctx.addIssue({
        code: 'custom',
        message: 'needs either cron + duration (recurring) or start + end (once)',
      });
    }
    if (w.timezone !== undefined && w.start && w.end && hasUtcOffset(w.start) && hasUtcOffset(w.end)) {
      ctx.addIssue({
        code: 'custom',
        path: ['timezone'],
        message: 'has no effect: start and end carry their own offsets; remove one or the other',
      });
    }
  })
  .transform((w) => {
    const common = {
      name: w.name,
      reason: w.reason,
      environments: w.environments,
      timezone: w.timezone,
      allowHotfixes: w.allowHotfixes,
    };
    return w.cron !== undefined
      ? { ...common, kind: 'recurring' as const, cron: w.cron, duration: w.duration ?? 0 }
      : { ...common, kind: 'once' as const, start: w.start ?? '', end: w.end ?? '' };
  });
export type FreezeWindow = z.infer<typeof FreezeWindow>;

/**
 * Post-deployment monitoring (M1-M4). The release watches the new version for `bakeTime`, sampling the
 * error rate every `sampleInterval`; a sample with at least `minRequestsPerSample` requests and an error
 * rate above `maxErrorRate` triggers the automatic rollback (M4).
 */
export const Monitoring = z.strictObject({
  bakeTime: Duration({ min: '1m', max: '24h' }),
  sampleInterval: Duration({ min: '5s', max: '1h' }),
  maxErrorRate: Fraction,
  /** Samples with fewer requests say nothing about the error rate and are not judged. */
  minRequestsPerSample: z.int({ error: requiredOr('must be a whole number') }).min(1, 'must be at least 1'),
  /** PromQL templates for the M4 samples. */
  queries: z.strictObject({ errorRate: QueryTemplate, requestCount: QueryTemplate }),
  /** M2: Loki error-log scan. */
  errorLogScan: z.strictObject({
    interval: Duration({ min: '30s', max: '24h' }),
    query: QueryTemplate,
    /** More matching lines than this in one scan count as a failed scan. */
    maxErrorLines: z.int().min(0),
  }),
  /** M3: Prometheus performance baseline. */
  performanceBaseline: z.strictObject({
    interval: Duration({ min: '1m', max: '24h' }),
    query: QueryTemplate,
    /** Largest tolerated regression against the baseline, as a fraction (0.25 = 25% worse). */
    maxRegression: z.number().positive(),
  }),
  /** M1: the smoke test run in CI after a deployment. */
  smokeTest: z.strictObject({ command: z.string().min(1) }),
});
export type Monitoring = z.infer<typeof Monitoring>;

/** How the database is protected beyond scheduled dumps (R2). */
export const DatabasePolicy = z.strictObject({
  /** Continuous WAL archiving: point-in-time recovery, an RPO of minutes. */
  walArchiving: z.boolean().default(false),
  /** A dump right before every production deployment, restored by a rollback (R2). */
  preDeploymentSnapshot: z.boolean().default(false),
  /** Migration files applied in the pipeline (L5). */
  migrations: z.string().min(1).default('db/migrations'),
  /** The deployment audit table (H4). */
  auditTable: z
    .string()
    .regex(/^[a-z_][a-z0-9_]*\.[a-z_][a-z0-9_]*$/, 'must be schema.table, e.g. internal.audit_deploy')
    .default('internal.audit_deploy'),
});
export type DatabasePolicy = z.infer<typeof DatabasePolicy>;

/** When a backup runs: a cron (in `timezone` or the organization's), a fixed interval, or every release. */
export const BackupSchedule = z.union(
  [
    z.strictObject({ cron: CronExpression, timezone: TimeZone.optional() }),
    z.strictObject({ every: Duration({ min: '1m', max: '366d' }) }),
    z.strictObject({ trigger: z.literal('each-release') }),
  ],
  { error: requiredOr('must be one of {cron: "0 2,14 * * *"}, {every: 12h} or {trigger: each-release}') },
);
export type BackupSchedule = z.infer<typeof BackupSchedule>;

const backupFields = {
  schedule: BackupSchedule,
  /** How long a backup is kept before the retention job deletes it. */
  retention: Duration({ min: '1h', max: '3660d' }),
  /** Key prefix in the backup bucket. */
  prefix: KeyPrefix,
};

/** B1-B4: what is backed up, when, and for how long. */
export const BackupPolicies = z.strictObject({
  /** Where backups are written, in `systems.objectStorage`. */
  bucket: BucketName,
  /** B1: PostgreSQL dump of the Supabase database. */
  database: z.strictObject({ ...backupFields, format: z.enum(['custom', 'plain']).default('custom') }),
  /** B2: snapshot of the MinIO buckets. */
  objectStorage: z.strictObject({
    ...backupFields,
    buckets: z.array(BucketName).min(1, 'must name a bucket'),
  }),
  /** B3: a Proxmox template of the deployment guests for every version. */
  deploymentSnapshot: z.strictObject({
    schedule: BackupSchedule,
    retention: backupFields.retention,
    node: z.string().min(1),
    guests: z.array(z.int().min(100, 'must be a Proxmox VM id (100 or more)')).min(1, 'must name a guest'),
    /** Templates kept regardless of age, newest first: at least the previous version for rollback. */
    keepAtLeast: z.int().min(1).default(2),
  }),
  /** B4: the Loki log archive in S3. */
  logs: z.strictObject({ ...backupFields, selector: QueryTemplate }),
});
export type BackupPolicies = z.infer<typeof BackupPolicies>;

/** R2: recovery objectives. */
export const RecoveryObjectives = z.strictObject({
  /** Recovery point objective: the most data, in time, that a restore may lose. */
  rpo: Duration({ min: '1m', max: '30d' }),
  /** Recovery time objective, informative. */
  rto: Duration({ min: '1m', max: '30d' }).optional(),
});

/** H1: the certificates that serve the environments' domains, e.g. `*.acehcommerce.id`. */
export const TlsPolicy = z.strictObject({
  certificates: z
    .array(
      z
        .string()
        .regex(
          /^(?:\*\.)?(?:[a-z0-9](?:[a-z0-9-]*[a-z0-9])?\.)+[a-z]{2,63}$/,
          'must be a host name or wildcard such as *.acehcommerce.id',
        ),
    )
    .min(1, 'must list at least one certificate name'),
});

/** Release artifacts and the order in which a release travels through the environments (L1, L5). */
export const ReleasePolicy = z.strictObject({
  /** Environments a release passes through, in order, e.g. [staging, production]. */
  promotion: z.array(EnvironmentName).min(1, 'must name at least one environment'),
  changelog: z.string().min(1).default('CHANGELOG.md'),
  buildOutput: z.string().min(1).default('out'),
  /** Where the docs snapshot of a version goes; `${version}` is replaced. */
  docsSnapshot: z.string().min(1).default('docs/releases/${version}/'),
  /**
   * The QA gate's report (L4), as an alternative to the `qaResult` signal: the release looks for this
   * Playwright or Postman (Newman) JSON report every `pollEvery` until it appears (or a `qaResult` signal
   * comes first), and passes when it has tests and none failed. `path` is on the worker's machine (a shared
   * volume the test run writes to); `${version}` is replaced.
   */
  qaReport: z
    .strictObject({
      path: z.string().min(1),
      format: z.enum(['playwright', 'postman']),
      pollEvery: Duration({ min: '5s', max: '1h' }).prefault('5m'),
    })
    .optional(),
});

/**
 * The whole platform configuration, version 1. Parse it with `validatePlatformConfig` (schema, inline
 * secrets, cross-field rules) or `loadPlatformConfig` (file + environment overrides), not with
 * `PlatformConfig.parse` alone, which does not know the rules between fields.
 */
export const PlatformConfig = z.strictObject({
  version: z.literal(1, { error: requiredOr('must be 1: this aceh-release reads configuration version 1') }),
  organization: z.strictObject({
    name: z.string().min(1),
    /** Default time zone of schedules and freeze windows. */
    timezone: TimeZone,
  }),
  environments: z
    .record(EnvironmentName, Environment)
    .refine((e) => Object.keys(e).length > 0, 'must define at least one environment'),
  services: z
    .record(ServiceName, Service)
    .refine((s) => Object.keys(s).length > 0, 'must define at least one service'),
  release: ReleasePolicy,
  systems: Systems,
  approval: ApprovalPolicy,
  freezeWindows: z.array(FreezeWindow).default([]),
  monitoring: Monitoring,
  database: DatabasePolicy.prefault({}),
  backups: BackupPolicies,
  recovery: RecoveryObjectives,
  tls: TlsPolicy.optional(),
});
export type PlatformConfig = z.infer<typeof PlatformConfig>;
