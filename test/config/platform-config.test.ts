/* eslint-disable @typescript-eslint/no-unsafe-member-access, @typescript-eslint/no-unsafe-assignment,
   @typescript-eslint/no-unsafe-call, @typescript-eslint/no-unsafe-return, @typescript-eslint/no-unsafe-argument
   -- the cases edit untyped YAML data on purpose: a malformed document has no type. */
/**
 * The platform configuration: the shipped example, malformed configurations (each rejected with a message
 * naming its path), the warnings of the rules between fields, and inline secrets.
 */
import fs from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';
import { describe, expect, it } from 'vitest';
import { PlatformConfig } from '../../src/config/platform-config';
import { validatePlatformConfig, type ConfigIssue } from '../../src/config/validate-platform-config';
import { scheduleIntervalMs } from '../../src/config/config-rules';

const EXAMPLE_FILE = path.join(__dirname, '..', '..', 'config', 'aceh-commerce.yaml');
const example = YAML.parse(fs.readFileSync(EXAMPLE_FILE, 'utf8')) as Record<string, unknown>;

// The document is plain data from YAML; tests edit it freely.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Doc = any;

/** A copy of the example with `edit` applied. */
function variant(edit: (doc: Doc) => void): unknown {
  const doc = structuredClone(example) as Doc;
  edit(doc);
  return doc;
}

const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const MINUTE = 60_000;

describe('the shipped example, config/aceh-commerce.yaml', () => {
  const result = validatePlatformConfig(example);

  it('validates with zero errors', () => {
    expect(result.errors).toEqual([]);
    expect(result.ok).toBe(true);
  });

  it('warns only that two dumps a day meet the one-hour RPO for rollbacks alone', () => {
    expect(result.warnings).toHaveLength(1);
    expect(result.warnings[0]!.path).toBe('recovery.rpo');
    expect(result.warnings[0]!.message).toContain('walArchiving');
  });

  it('carries the environments, strategies and thresholds of the seed documents', () => {
    const c = result.config!;
    expect(c.environments['development']!.domain).toBe('http://dev.acehcommerce.local');
    expect(c.environments['staging']!.domain).toBe('https://staging.acehcommerce.id');
    expect(c.environments['production']!.domain).toBe('https://acehcommerce.id');
    expect(c.environments['production']!.domains).toEqual({
      admin: 'https://admin.acehcommerce.id',
      auth: 'https://auth.acehcommerce.id',
      api: 'https://api.acehcommerce.id',
    });
    expect(c.environments['production']!.strategy.type).toBe('blue-green');
    expect(c.environments['staging']!.strategy.type).toBe('rolling');
    const alternatives = c.environments['production']!.alternativeStrategies;
    expect(alternatives.map((s) => s.type)).toEqual(['canary', 'shadow']);
    expect(alternatives[0]).toMatchObject({ steps: [5, 25, 50, 100], stepDuration: 10 * MINUTE });
    // M2-M4
    expect(c.monitoring).toMatchObject({
      bakeTime: 10 * MINUTE,
      sampleInterval: MINUTE,
      maxErrorRate: 0.05,
      errorLogScan: { interval: 5 * MINUTE },
      performanceBaseline: { interval: 30 * MINUTE },
    });
    // B1-B4, R2
    expect(scheduleIntervalMs(c.backups.database.schedule)).toBe(12 * HOUR);
    expect(c.backups.database.retention).toBe(30 * DAY);
    expect(scheduleIntervalMs(c.backups.objectStorage.schedule)).toBe(DAY);
    expect(c.backups.objectStorage.retention).toBe(14 * DAY);
    expect(c.backups.deploymentSnapshot.schedule).toEqual({ trigger: 'each-release' });
    expect(c.backups.deploymentSnapshot.retention).toBe(7 * DAY);
    expect(c.backups.logs.retention).toBe(60 * DAY);
    expect(c.recovery.rpo).toBe(HOUR);
    expect(c.systems.registry).toMatchObject({
      url: 'https://registry.luxima.id',
      repository: 'aceh-commerce',
    });
    expect(c.systems.supabase.url).toBe('https://supabase.acehcommerce.id');
    expect(c.systems.telegram.channelName).toBe('#luxima-alerts');
    expect(c.systems.coolify.token).toEqual({ env: 'COOLIFY_TOKEN' });
    expect(c.approval).toMatchObject({ environments: ['production'], separationOfDuties: true });
  });

  it('normalizes freeze windows into recurring and one-off kinds', () => {
    const [weekend, harbolnas] = result.config!.freezeWindows;
    expect(weekend).toMatchObject({ kind: 'recurring', cron: '0 17 * * 5', duration: 63 * HOUR });
    expect(harbolnas).toMatchObject({ kind: 'once', start: '2026-12-11T00:00:00', timezone: 'Asia/Jakarta' });
  });

  it('fills defaults for settings the file leaves out', () => {
    const c = validatePlatformConfig(
      variant((d) => {
        delete d.database;
        d.environments.production.strategy = { type: 'blue-green' };
        d.database = { walArchiving: true };
      }),
    ).config!;
    expect(c.environments['production']!.strategy).toEqual({
      type: 'blue-green',
      trafficSwitch: 'dns',
      verifyFor: 10 * MINUTE,
      keepPreviousFor: 24 * HOUR,
    });
    expect(c.database).toEqual({
      walArchiving: true,
      preDeploymentSnapshot: false,
      migrations: 'db/migrations',
      auditTable: 'internal.audit_deploy',
    });
  });

  it('is the same schema that PlatformConfig.parse applies (rules aside)', () => {
    expect(PlatformConfig.safeParse(example).success).toBe(true);
  });
});

interface Malformed {
  name: string;
  edit: (doc: Doc) => void;
  path: string;
  message: string;
}

const SECRET = 'tok-3f9a8b7c1d';

const MALFORMED: Malformed[] = [
  {
    name: 'an http production domain (H1)',
    edit: (d) => (d.environments.production.domain = 'http://acehcommerce.id'),
    path: 'environments.production.domain',
    message: 'must be an https URL',
  },
  {
    name: 'a bare host name as a domain',
    edit: (d) => (d.environments.staging.domain = 'staging.acehcommerce.id'),
    path: 'environments.staging.domain',
    message: 'must be an https URL such as https://acehcommerce.id',
  },
  {
    name: 'an http extra domain in production',
    edit: (d) => (d.environments.production.domains.api = 'http://api.acehcommerce.id'),
    path: 'environments.production.domains.api',
    message: 'must be an https URL',
  },
  {
    name: 'plain http to a public development domain',
    edit: (d) => (d.environments.development.domain = 'http://dev.acehcommerce.id'),
    path: 'environments.development.domain',
    message: 'plain http only for a .local development domain',
  },
  {
    name: 'a .local domain in production',
    edit: (d) => (d.environments.production.domain = 'https://shop.acehcommerce.local'),
    path: 'environments.production.domain',
    message: 'needs a public https domain',
  },
  {
    name: 'a domain with a path',
    edit: (d) => (d.environments.production.domain = 'https://acehcommerce.id/shop'),
    path: 'environments.production.domain',
    message: 'must be only a scheme and host',
  },
  {
    name: 'the same domain twice',
    edit: (d) => (d.environments.staging.domains.admin = 'https://admin.acehcommerce.id'),
    path: 'environments.production.domains.admin',
    message: 'duplicates the domain admin.acehcommerce.id of environments.staging.domains.admin',
  },
  {
    name: 'a domain the wildcard certificate does not cover',
    edit: (d) => (d.environments.staging.domains.admin = 'https://admin.staging.acehcommerce.id'),
    path: 'environments.staging.domains.admin',
    message: 'is not covered by tls.certificates',
  },
  {
    name: 'canary steps that do not grow',
    edit: (d) => (d.environments.production.alternativeStrategies[0].steps = [5, 50, 25, 100]),
    path: 'environments.production.alternativeStrategies[0].steps[2]',
    message: 'must be greater than the step before (50)',
  },
  {
    name: 'canary steps that stop before 100',
    edit: (d) => (d.environments.production.alternativeStrategies[0].steps = [5, 25, 50]),
    path: 'environments.production.alternativeStrategies[0].steps',
    message: 'must end at 100',
  },
  {
    name: 'a canary strategy without steps',
    edit: (d) => delete d.environments.production.alternativeStrategies[0].steps,
    path: 'environments.production.alternativeStrategies[0].steps',
    message: 'a canary strategy needs weight steps, e.g. [5, 25, 50, 100]',
  },
  {
    name: 'a canary step above 100%',
    edit: (d) => (d.environments.production.alternativeStrategies[0].steps = [50, 150]),
    path: 'environments.production.alternativeStrategies[0].steps[1]',
    message: 'must be at most 100%',
  },
  {
    name: 'an unknown strategy type',
    edit: (d) => (d.environments.production.strategy = { type: 'big-bang' }),
    path: 'environments.production.strategy.type',
    message: 'type must be one of blue-green, canary, shadow, rolling',
  },
  {
    name: 'the same strategy twice in one environment',
    edit: (d) => d.environments.production.alternativeStrategies.push({ type: 'blue-green' }),
    path: 'environments.production.alternativeStrategies[2]',
    message: 'repeats strategy blue-green',
  },
  {
    name: 'rolling updates in production without acknowledgement',
    edit: (d) => (d.environments.production.strategy = { type: 'rolling' }),
    path: 'environments.production.strategy',
    message: 'set acknowledgeNoInstantRollback: true',
  },
  {
    name: 'one application where blue-green needs two',
    edit: (d) => (d.services.storefront.deployments.production = { application: 'storefront-production' }),
    path: 'services.storefront.deployments.production',
    message: 'needs two Coolify applications {blue, green}',
  },
  {
    name: 'a service deployed to an undefined environment',
    edit: (d) => (d.services.storefront.deployments.qa = { application: 'storefront-qa' }),
    path: 'services.storefront.deployments.qa',
    message: 'names environment "qa", which is not defined',
  },
  {
    name: 'a service domain its environment lacks',
    edit: (d) => delete d.environments.staging.domains.admin,
    path: 'services.admin-panel.domain',
    message: 'environment staging has no domains.admin',
  },
  {
    name: 'one Coolify application behind two targets',
    edit: (d) => (d.services['admin-panel'].deployments.staging.application = 'storefront-staging'),
    path: 'services.admin-panel.deployments.staging',
    message: 'already used by services.storefront.deployments.staging',
  },
  {
    name: 'more required approvals than approvers',
    edit: (d) => (d.approval.requiredApprovals = 4),
    path: 'approval.requiredApprovals',
    message: 'is 4, but only 3 approvers are listed',
  },
  {
    name: 'an approver listed twice',
    edit: (d) => (d.approval.approvers = ['tech-lead', 'tech-lead', 'qa-lead']),
    path: 'approval.approvers[1]',
    message: 'lists tech-lead twice',
  },
  {
    name: 'approval for an undefined environment',
    edit: (d) => (d.approval.environments = ['prod']),
    path: 'approval.environments[0]',
    message: 'names environment "prod", which is not defined; defined: development, staging, production',
  },
  {
    name: 'zero required approvals',
    edit: (d) => (d.approval.requiredApprovals = 0),
    path: 'approval.requiredApprovals',
    message: 'must be at least 1',
  },
  {
    name: 'an inline token',
    edit: (d) => (d.systems.coolify.token = SECRET),
    path: 'systems.coolify.token',
    message: 'is an inline secret: configuration holds only references; write {env: NAME} or {file: PATH}',
  },
  {
    name: 'an inline secret under a key the schema does not know',
    edit: (d) => (d.systems.grafana.apiKey = SECRET),
    path: 'systems.grafana.apiKey',
    message: 'is an inline secret',
  },
  {
    name: 'a GitHub token pasted into a description',
    edit: (d) => (d.services.storefront.description = `see ghp_${'a1B2'.repeat(9)}`),
    path: 'services.storefront.description',
    message: 'looks like a GitHub token: configuration holds only references',
  },
  {
    name: 'a credential reference to a malformed variable name',
    edit: (d) => (d.systems.coolify.token = { env: 'coolify-token' }),
    path: 'systems.coolify.token.env',
    message: 'must be an environment variable name',
  },
  {
    name: 'a credential that is neither env nor file',
    edit: (d) => (d.systems.grafana.token = { vault: 'grafana' }),
    path: 'systems.grafana.token',
    message: 'must be a credential reference: {env: NAME}',
  },
  {
    name: 'a password inside a system URL',
    edit: (d) => (d.systems.registry.url = `https://ci:${SECRET}@registry.luxima.id`),
    path: 'systems.registry.url',
    message: 'must not carry a user or password',
  },
  {
    name: 'plain http to a system on the network (H1)',
    edit: (d) => (d.systems.loki.url = 'http://loki.luxima.id:3100'),
    path: 'systems.loki.url',
    message: 'must be an https URL (H1: HTTPS everywhere)',
  },
  {
    name: 'unencrypted database traffic',
    edit: (d) => (d.systems.postgres.sslMode = 'disable'),
    path: 'systems.postgres.sslMode',
    message: 'database traffic must be encrypted',
  },
  {
    name: 'a duration without a unit',
    edit: (d) => (d.monitoring.bakeTime = '10 minutes'),
    path: 'monitoring.bakeTime',
    message: 'must be a duration such as 90s, 10m',
  },
  {
    name: 'a duration given as a number',
    edit: (d) => (d.recovery.rpo = 3600),
    path: 'recovery.rpo',
    message: 'must be a duration such as 10m, 12h or 30d',
  },
  {
    name: 'an error rate written as a percentage',
    edit: (d) => (d.monitoring.maxErrorRate = 5),
    path: 'monitoring.maxErrorRate',
    message: 'write 0.05 for 5%, not 5',
  },
  {
    name: 'a misspelt setting',
    edit: (d) => {
      d.monitoring.maxErorRate = d.monitoring.maxErrorRate;
      delete d.monitoring.maxErrorRate;
    },
    path: 'monitoring.maxErorRate',
    message: 'is not a setting here; did you mean maxErrorRate?',
  },
  {
    name: 'a missing system',
    edit: (d) => delete d.systems.telegram,
    path: 'systems.telegram',
    message: 'is required',
  },
  {
    name: 'an unknown query placeholder',
    edit: (d) => (d.monitoring.queries.errorRate = 'rate(errors{env="${env}"}[1m])'),
    path: 'monitoring.queries.errorRate',
    message: 'unknown placeholder ${env}',
  },
  {
    name: 'samples longer than the bake time',
    edit: (d) => (d.monitoring.sampleInterval = '15m'),
    path: 'monitoring.sampleInterval',
    message: 'is longer than bakeTime (10m): no sample would be taken',
  },
  {
    name: 'two dumps a day, no WAL archiving, no pre-deployment snapshot, RPO one hour (R2)',
    edit: (d) => (d.database.preDeploymentSnapshot = false),
    path: 'recovery.rpo',
    message:
      'enable database.walArchiving (continuous WAL archiving, point-in-time recovery) or database.preDeploymentSnapshot: true',
  },
  {
    name: 'retention shorter than the backup interval',
    edit: (d) => (d.backups.objectStorage.retention = '12h'),
    path: 'backups.objectStorage.retention',
    message: '(12h) is shorter than the time between backups (1d)',
  },
  {
    name: 'a cron hour out of range',
    edit: (d) => (d.backups.database.schedule = { cron: '0 25 * * *' }),
    path: 'backups.database.schedule.cron',
    message: 'hour: 25 is outside 0-23',
  },
  {
    name: 'a backup schedule of no known form',
    edit: (d) => (d.backups.objectStorage.schedule = { daily: true }),
    path: 'backups.objectStorage.schedule',
    message: 'must be one of {cron: "0 2,14 * * *"}, {every: 12h} or {trigger: each-release}',
  },
  {
    name: 'an interval schedule with a bad duration',
    edit: (d) => (d.backups.logs.schedule = { every: 'often' }),
    path: 'backups.logs.schedule.every',
    message: 'must be a duration',
  },
  {
    name: 'an unknown time zone',
    edit: (d) => (d.organization.timezone = 'Asia/Banda_Aceh'),
    path: 'organization.timezone',
    message: 'must be an IANA time zone',
  },
  {
    name: 'a freeze window that ends before it starts',
    edit: (d) => (d.freezeWindows[1].end = '2026-12-10T00:00:00'),
    path: 'freezeWindows[1].end',
    message: 'must be after start',
  },
  {
    name: 'a freeze window both recurring and one-off',
    edit: (d) => (d.freezeWindows[0].start = '2026-12-10T00:00:00+07:00'),
    path: 'freezeWindows[0]',
    message: 'is either recurring (cron + duration) or once (start + end), not both',
  },
  {
    name: 'a recurring freeze window that never opens',
    edit: (d) =>
      (d.freezeWindows[0] = {
        name: 'always',
        environments: ['production'],
        cron: '@daily',
        duration: '24h',
      }),
    path: 'freezeWindows[0].duration',
    message: 'releases would be frozen forever',
  },
  {
    name: 'an environment name in capitals',
    edit: (d) => {
      d.environments.Production = d.environments.production;
    },
    path: 'environments.Production',
    message: 'is not a valid name: an environment name must be lower-case',
  },
  {
    name: 'no production environment',
    edit: (d) => (d.environments.production.tier = 'staging'),
    path: 'environments',
    message: 'must include an environment with tier: production',
  },
  {
    name: 'an unsupported configuration version',
    edit: (d) => (d.version = 2),
    path: 'version',
    message: 'must be 1',
  },
  {
    name: 'a wrong type',
    edit: (d) => (d.monitoring.minRequestsPerSample = 'twenty'),
    path: 'monitoring.minRequestsPerSample',
    message: 'must be a whole number',
  },
];

describe('malformed configurations are rejected, naming the path', () => {
  it('has at least 20 cases', () => {
    expect(MALFORMED.length).toBeGreaterThanOrEqual(20);
  });

  it.each(MALFORMED)('$name → $path', ({ edit, path: where, message }) => {
    const result = validatePlatformConfig(variant(edit));
    expect(result.ok).toBe(false);
    expect(result.config).toBeUndefined();
    const match = result.errors.find((e) => e.path === where && e.message.includes(message));
    expect(
      match,
      `errors were:\n${result.errors.map((e) => `${e.path}: ${e.message}`).join('\n')}`,
    ).toBeDefined();
  });

  it('never repeats a secret value in a message', () => {
    for (const edit of [
      (d: Doc) => (d.systems.coolify.token = SECRET),
      (d: Doc) => (d.systems.grafana.apiKey = SECRET),
      (d: Doc) => (d.systems.registry.url = `https://ci:${SECRET}@registry.luxima.id`),
      (d: Doc) => (d.systems.postgres.password = SECRET),
    ]) {
      const result = validatePlatformConfig(variant(edit));
      expect(result.ok).toBe(false);
      expect(JSON.stringify(result)).not.toContain(SECRET);
    }
  });

  it('reports an inline secret once, not again as a schema mismatch or an unknown key', () => {
    const result = validatePlatformConfig(
      variant((d) => {
        d.systems.coolify.token = SECRET;
        d.systems.grafana.apiKey = SECRET;
      }),
    );
    expect(result.errors.map((e) => e.path)).toEqual(['systems.coolify.token', 'systems.grafana.apiKey']);
  });

  it('reports every error of a document at once', () => {
    const result = validatePlatformConfig(
      variant((d) => {
        d.environments.production.domain = 'http://acehcommerce.id';
        d.monitoring.maxErrorRate = 5;
        d.backups.database.retention = 'forever';
      }),
    );
    expect(result.errors.map((e) => e.path).sort()).toEqual([
      'backups.database.retention',
      'environments.production.domain',
      'monitoring.maxErrorRate',
    ]);
  });

  it('rejects what is not a configuration at all', () => {
    for (const document of [null, 'text', [], 42]) {
      const result = validatePlatformConfig(document);
      expect(result.ok).toBe(false);
      expect(result.errors[0]).toMatchObject({
        path: '',
        message: 'must be a mapping of settings, not ' + describe_(document),
      });
    }
  });
});

function describe_(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a list';
  return typeof value === 'string' ? 'text' : 'a number';
}

interface Warned {
  name: string;
  edit: (doc: Doc) => void;
  path: string;
  message: string;
}

const WARNED: Warned[] = [
  {
    name: 'as many approvers as approvals, with separation of duties',
    edit: (d) => (d.approval.requiredApprovals = 3),
    path: 'approval.requiredApprovals',
    message: 'a release requested by one of them can never collect enough approvals',
  },
  {
    name: 'separation of duties off',
    edit: (d) => (d.approval.separationOfDuties = false),
    path: 'approval.separationOfDuties',
    message: 'a requester may approve their own release',
  },
  {
    name: 'production without manual approval',
    edit: (d) => (d.approval.environments = ['staging']),
    path: 'approval.environments',
    message: 'releases would reach production without manual approval (L2)',
  },
  {
    name: 'shadow as the default strategy',
    edit: (d) => {
      d.environments.production.strategy = { type: 'shadow' };
      d.environments.production.alternativeStrategies = [{ type: 'blue-green' }];
    },
    path: 'environments.production.strategy.type',
    message: 'would never go live',
  },
  {
    name: 'no certificates listed',
    edit: (d) => delete d.tls,
    path: 'tls',
    message: 'certificate coverage of the domains (H1) is not checked',
  },
  {
    name: 'deployment templates on a timetable rather than per version',
    edit: (d) => (d.backups.deploymentSnapshot.schedule = { every: '1d' }),
    path: 'backups.deploymentSnapshot.schedule',
    message: 'use {trigger: each-release}',
  },
  {
    name: 'only the newest deployment template kept',
    edit: (d) => (d.backups.deploymentSnapshot.keepAtLeast = 1),
    path: 'backups.deploymentSnapshot.keepAtLeast',
    message: 'rolling back needs the previous one too',
  },
  {
    name: 'an error-log scan slower than the bake time',
    edit: (d) => (d.monitoring.errorLogScan.interval = '15m'),
    path: 'monitoring.errorLogScan.interval',
    message: 'may not run before the release is declared healthy',
  },
  {
    name: 'a hotfix path longer than the normal one',
    edit: (d) => (d.approval.hotfix.requiredApprovals = 2),
    path: 'approval.hotfix.requiredApprovals',
    message: 'the hotfix path is meant to be shorter',
  },
];

describe('the rules between fields warn where a configuration works but falls short', () => {
  it.each(WARNED)('$name → $path', ({ edit, path: where, message }) => {
    const result = validatePlatformConfig(variant(edit));
    expect(result.errors).toEqual([]);
    const match = result.warnings.find((w: ConfigIssue) => w.path === where && w.message.includes(message));
    expect(
      match,
      `warnings were:\n${result.warnings.map((w) => `${w.path}: ${w.message}`).join('\n')}`,
    ).toBeDefined();
  });

  it('is silent about the RPO once WAL archiving is on', () => {
    const result = validatePlatformConfig(variant((d) => (d.database.walArchiving = true)));
    expect(result).toMatchObject({ ok: true, errors: [], warnings: [] });
  });

  it('accepts rolling updates in production once acknowledged', () => {
    const result = validatePlatformConfig(
      variant((d) => {
        d.environments.production.strategy = { type: 'rolling', acknowledgeNoInstantRollback: true };
        d.environments.production.alternativeStrategies = [];
        for (const s of Object.values<Doc>(d.services)) {
          s.deployments.production = { application: `${s.domain}-production` };
        }
      }),
    );
    expect(result.errors).toEqual([]);
  });

  it('accepts one-off freeze windows with explicit offsets and no time zone', () => {
    const result = validatePlatformConfig(
      variant((d) => {
        d.freezeWindows[1] = {
          name: 'audit',
          environments: ['production'],
          start: '2026-03-01T00:00:00+07:00',
          end: '2026-03-01T06:00:00Z',
        };
      }),
    );
    expect(result.errors).toEqual([]);
  });
});
